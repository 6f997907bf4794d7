"""The registry every table is declared on (Advanced Alchemy's), for the models and Alembic."""

from __future__ import annotations

from advanced_alchemy.base import orm_registry

metadata = orm_registry.metadata

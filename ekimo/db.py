"""Database plumbing: the model registry, URL dialects, the engine and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from advanced_alchemy.base import orm_registry
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = orm_registry.metadata

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy URL for asyncpg, whatever PostgreSQL scheme the user gave."""
    _, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}"


def libpq_url(url: str) -> str:
    """The plain libpq URL (psycopg, psql) for the same database."""
    _, rest = url.split("://", 1)
    return f"postgresql://{rest}"


def create_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        # Sessions commit explicitly; a connection returned to the pool is rolled back.
        pool_reset_on_return="rollback",
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = asyncpg_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def revision(url: str, message: str, autogenerate: bool = True) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=autogenerate)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # Alembic's async env runs its own event loop, so it must not share ours.
    await asyncio.to_thread(upgrade, url, revision)

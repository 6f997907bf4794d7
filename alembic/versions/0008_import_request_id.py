"""imports.request_id: the id of the request that uploaded the file (also in its log lines)

Revision ID: 0008_import_request_id
Revises: 0007_catalog_reads
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_import_request_id"
down_revision: str | None = "0007_catalog_reads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("imports", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("imports", "request_id")

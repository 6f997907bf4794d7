"""catalog reads that stay flat as the catalog grows

A trigram index for "name contains", an index (key, id) per sort key, a partial index on the
pending products by barcode, and statistics on `version > synced_version` for the estimates.

Plain CREATE INDEX (not CONCURRENTLY): migrations run before the API and the worker start
(`ekimo db upgrade`, the compose `migrate` service), so no request waits on the write lock.

Revision ID: 0007_catalog_reads
Revises: 0006_access
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_catalog_reads"
down_revision: str | None = "0006_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Not quantity, created_at or version: rare sorts, and each index costs every write.
SORT_INDEXED = ("name", "price", "last_updated", "updated_at")
PENDING = sa.text("version > synced_version")
TRGM_AVAILABLE = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')"


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL's contrib modules (the postgres images, distributions'
    # packages) and is a trusted extension since PostgreSQL 13: the database's owner may create
    # it. A server without it (the embedded one of `ekimo serve` for development) still
    # migrates: "name contains" reads the table there, as before.
    available = op.get_bind().execute(sa.text(TRGM_AVAILABLE)).scalar()
    if available:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_products_name_trgm",
            "products",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
    for key in SORT_INDEXED:
        op.create_index(f"ix_products_{key}", "products", [key, "id"])
    op.create_index(
        "ix_products_pending_barcode",
        "products",
        ["barcode"],
        postgresql_include=["version"],
        postgresql_where=PENDING,
    )
    # The planner has no statistics for a comparison of two columns (it guesses a third of the
    # table); on the expression it has, and `(version > synced_version) IS TRUE` reads them.
    op.execute("CREATE STATISTICS st_products_pending ON (version > synced_version) FROM products")
    # No ANALYZE here: on a new (empty) catalog it would record "no rows", and the first
    # re-import after a bulk load would be planned for an empty table until autovacuum's next
    # analyze (a scan of the staging table per product). Autovacuum gathers these statistics.


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS st_products_pending")
    op.drop_index("ix_products_pending_barcode", "products")
    for key in SORT_INDEXED:
        op.drop_index(f"ix_products_{key}", "products")
    op.execute("DROP INDEX IF EXISTS ix_products_name_trgm")
    # pg_trgm stays: it may have been there before this migration, and unused it costs nothing.

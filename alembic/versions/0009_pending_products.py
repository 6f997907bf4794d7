"""pending_products: the sync's pending set, out of `products`

A sync acknowledged each batch by setting `products.synced_version`: an update of every product
sent, which PostgreSQL cannot do in place once an index names the column (the pending indexes
did), so each one rewrote the product in all of the catalog's indexes. Now a product waiting
for the sync has a narrow row here; acknowledging deletes it. `products.synced_version` goes
(the API still reports it, from this table), with the two partial indexes and the statistics
that served it. Products deleted or truncated by hand take their pending rows with them (two
statement triggers: a foreign key would cost a check per imported product).

Revision ID: 0009_pending_products
Revises: 0008_import_request_id
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_pending_products"
down_revision: str | None = "0008_import_request_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORGET_DELETED = """
CREATE FUNCTION pending_products_forget_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pending_products s USING deleted d WHERE s.product_id = d.id;
    RETURN NULL;
END $$
"""
ON_DELETE = """
CREATE TRIGGER products_deleted AFTER DELETE ON products
REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT
EXECUTE FUNCTION pending_products_forget_deleted()
"""
FORGET_ALL = """
CREATE FUNCTION pending_products_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Not TRUNCATE: `TRUNCATE products, pending_products` would then truncate a table in use.
    DELETE FROM pending_products;
    RETURN NULL;
END $$
"""
ON_TRUNCATE = """
CREATE TRIGGER products_truncated AFTER TRUNCATE ON products
FOR EACH STATEMENT EXECUTE FUNCTION pending_products_forget_all()
"""


def upgrade() -> None:
    op.create_table(
        "pending_products",
        sa.Column("product_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("barcode", sa.String(length=14), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("synced_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_pending_products")),
        sa.UniqueConstraint("barcode", name=op.f("uq_pending_products_barcode")),
    )
    op.execute(
        "INSERT INTO pending_products (product_id, barcode, version, synced_version) "
        "SELECT id, barcode, version, synced_version FROM products WHERE version > synced_version"
    )
    op.execute("DROP STATISTICS IF EXISTS st_products_pending")
    op.drop_index("ix_products_pending_barcode", "products")
    op.drop_index("ix_products_pending", "products")
    op.drop_column("products", "synced_version")
    for statement in (FORGET_DELETED, ON_DELETE, FORGET_ALL, ON_TRUNCATE):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER products_truncated ON products")
    op.execute("DROP TRIGGER products_deleted ON products")
    op.execute("DROP FUNCTION pending_products_forget_all()")
    op.execute("DROP FUNCTION pending_products_forget_deleted()")
    op.add_column(
        "products",
        sa.Column("synced_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE products p SET synced_version = coalesce("
        "(SELECT s.synced_version FROM pending_products s WHERE s.product_id = p.id), p.version)"
    )
    op.create_index(
        "ix_products_pending",
        "products",
        ["id"],
        postgresql_where=sa.text("version > synced_version"),
    )
    op.create_index(
        "ix_products_pending_barcode",
        "products",
        ["barcode"],
        postgresql_include=["version"],
        postgresql_where=sa.text("version > synced_version"),
    )
    op.execute("CREATE STATISTICS st_products_pending ON (version > synced_version) FROM products")
    op.drop_table("pending_products")

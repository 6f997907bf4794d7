"""products: the barcode check without a regular expression

PostgreSQL's regex engine made `barcode ~ '^[0-9]{1,14}$'` cost about a second per million
inserted rows; `ltrim` over the digits says the same (varchar(14) bounds the length) for a
fraction of it.

Revision ID: 0005_barcode_check
Revises: 0004_catalog
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_barcode_check"
down_revision: str | None = "0004_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_products_barcode_digits"


def upgrade() -> None:
    op.drop_constraint(op.f(NAME), "products", type_="check")
    op.create_check_constraint(
        op.f(NAME), "products", "barcode <> '' AND ltrim(barcode, '0123456789') = ''"
    )


def downgrade() -> None:
    op.drop_constraint(op.f(NAME), "products", type_="check")
    op.create_check_constraint(op.f(NAME), "products", "barcode ~ '^[0-9]{1,14}$'")

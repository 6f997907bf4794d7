"""access control: roles, active accounts, token versions, API keys, the audit trail

Existing accounts keep today's powers: the oldest becomes admin, the others editor. Imports
keep their author's id and name when the account is deleted (no foreign key any more).

Revision ID: 0006_access
Revises: 0005_barcode_check
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_access"
down_revision: str | None = "0005_barcode_check"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE_CHECK = "role IN ('viewer', 'editor', 'admin', 'receiver')"


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("role", sa.String(16), nullable=False, server_default="editor")
    )
    op.add_column(
        "users", sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column(
        "users", sa.Column("token_version", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_check_constraint(op.f("ck_users_user_role"), "users", ROLE_CHECK)
    op.execute(
        "UPDATE users SET role = 'admin' WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)"
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("user_token_version", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
        sa.CheckConstraint(ROLE_CHECK, name=op.f("ck_api_keys_api_key_role")),
    )
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])

    op.drop_constraint(op.f("fk_imports_user_id_users"), "imports", type_="foreignkey")
    op.add_column("imports", sa.Column("username", sa.String(64), nullable=True))
    op.execute("UPDATE imports i SET username = u.username FROM users u WHERE u.id = i.user_id")


def downgrade() -> None:
    op.execute("UPDATE imports SET user_id = NULL WHERE user_id NOT IN (SELECT id FROM users)")
    op.drop_column("imports", "username")
    op.create_foreign_key(
        op.f("fk_imports_user_id_users"),
        "imports",
        "users",
        ["user_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_table("audit_events")
    op.drop_table("api_keys")
    op.drop_constraint(op.f("ck_users_user_role"), "users", type_="check")
    op.drop_column("users", "token_version")
    op.drop_column("users", "active")
    op.drop_column("users", "role")

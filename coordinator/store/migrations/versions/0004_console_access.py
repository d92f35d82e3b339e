"""Console access: console users (a role and the SHA-256 of each user's token), their browser
sessions (the SHA-256 of each session id, its CSRF token and expiry) and the action log (who did
what, on what, when, with the request's id).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("revoked_at", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("session_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("expires_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_sha256"),
    )
    op.create_index(
        op.f("ix_console_sessions_user_name"), "console_sessions", ["user_name"], unique=False
    )
    op.create_table(
        "action_log",
        sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.String(length=256), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index(op.f("ix_action_log_at"), "action_log", ["at"], unique=False)
    op.create_index(op.f("ix_action_log_user_name"), "action_log", ["user_name"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_action_log_user_name"), table_name="action_log")
    op.drop_index(op.f("ix_action_log_at"), table_name="action_log")
    op.drop_table("action_log")
    op.drop_index(op.f("ix_console_sessions_user_name"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_users")

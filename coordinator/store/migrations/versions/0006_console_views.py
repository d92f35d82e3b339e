"""Columns the console's views and the follow-up executor need beyond 0005.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPPER_LIMIT_COLUMNS = (
    "filter",
    "pointing_ra_deg",
    "pointing_dec_deg",
    "searched_radius_deg",
    "limiting_mag",
)
"""What a frame's search record needs for upper limits on the source pages."""


def upgrade() -> None:
    utc = coordinator.store.tables.UtcDateTime
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("heartbeat_received_at", utc(), nullable=True))
    with op.batch_alter_table("frame_searches") as batch:
        batch.add_column(sa.Column("filter", sa.String(length=32), nullable=True))
        for column in UPPER_LIMIT_COLUMNS[1:]:
            batch.add_column(sa.Column(column, sa.Float(), nullable=True))
    op.create_table(
        "followup_commands",
        sa.Column("command_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("sent_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("command_id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index(
        op.f("ix_followup_commands_request_id"), "followup_commands", ["request_id"], unique=False
    )
    op.create_index(
        op.f("ix_followup_commands_sent_at"), "followup_commands", ["sent_at"], unique=False
    )


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("heartbeat_received_at")
    with op.batch_alter_table("frame_searches") as batch:
        for column in UPPER_LIMIT_COLUMNS:
            batch.drop_column(column)
    op.drop_index(op.f("ix_followup_commands_sent_at"), table_name="followup_commands")
    op.drop_index(op.f("ix_followup_commands_request_id"), table_name="followup_commands")
    op.drop_table("followup_commands")

"""Frame searches: each frame's transient-search record (searched, or skipped and why), one
row per `FrameSearched` message.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "frame_searches",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("searched_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("observed_at", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.Column("file_name", sa.String(length=512), nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=False),
        sa.Column("score_message_id", sa.String(length=128), nullable=False),
        sa.Column("attempted", sa.Boolean(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("skipped_reason", sa.String(length=256), nullable=True),
        sa.Column("search_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        op.f("ix_frame_searches_frame_sha256"), "frame_searches", ["frame_sha256"], unique=False
    )
    op.create_index(
        "ix_frame_searches_site_time", "frame_searches", ["site_id", "searched_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_frame_searches_site_time", table_name="frame_searches")
    op.drop_index(op.f("ix_frame_searches_frame_sha256"), table_name="frame_searches")
    op.drop_table("frame_searches")

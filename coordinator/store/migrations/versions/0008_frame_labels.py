"""Operators' quality labels on frames (good, medium, bad), the latest per frame counting.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "frame_labels",
        sa.Column("label_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("note", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("label_id"),
    )
    op.create_index(
        op.f("ix_frame_labels_frame_sha256"), "frame_labels", ["frame_sha256"], unique=False
    )
    op.create_index(op.f("ix_frame_labels_at"), "frame_labels", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_frame_labels_at"), table_name="frame_labels")
    op.drop_index(op.f("ix_frame_labels_frame_sha256"), table_name="frame_labels")
    op.drop_table("frame_labels")

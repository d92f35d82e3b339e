"""Indexes for the console's position and time lookups: the source page's upper limits (frame
searches by pointing declination), the candidates page's nearby sources (targets by status and
declination) and its newest-first list (candidates by observation time).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


INDEXES = (
    ("ix_frame_searches_pointing_dec", "frame_searches", ["pointing_dec_deg"]),
    ("ix_targets_status_dec", "targets", ["status", "dec_deg"]),
    ("ix_candidates_observed_at", "candidates", ["observed_at"]),
)
"""(name, table, columns) of each index this revision adds."""


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)

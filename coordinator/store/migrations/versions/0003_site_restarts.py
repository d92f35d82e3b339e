"""Site restarts: the parts of each site's agent that failed and were started again, and its
frames that failed, from the site's latest heartbeat.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("restarts", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("failed_frames", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("failed_frames")
        batch.drop_column("restarts")

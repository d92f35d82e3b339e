"""Follow-ups that reach the telescope and a console to scan with: each site's weather and
safety, frame thumbnails, targets that are candidates, sources, tracklets or rejected (and what
promoted them), each follow-up's plan, explanation and exposure progress, operators' comments
on targets and labels on detections.

Existing targets become sources when they were seen in two or more frames or at two or more
sites, tracklets when moving, candidates otherwise.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = coordinator.store.tables.UtcDateTime
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("conditions", sa.JSON(), nullable=True))
    with op.batch_alter_table("heartbeats") as batch:
        batch.add_column(sa.Column("conditions", sa.JSON(), nullable=True))
    with op.batch_alter_table("frame_scores") as batch:
        batch.add_column(sa.Column("thumbnail_png_b64", sa.String(length=16000), nullable=True))
    with op.batch_alter_table("targets") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="candidate")
        )
        batch.add_column(sa.Column("promoted_at", utc(), nullable=True))
        batch.add_column(sa.Column("promoted_by", sa.String(length=80), nullable=True))
        batch.create_index(batch.f("ix_targets_status"), ["status"], unique=False)
    op.execute(
        "UPDATE targets SET status = CASE WHEN moving THEN 'tracklet' "
        "WHEN n_frames >= 2 OR n_sites >= 2 THEN 'source' ELSE 'candidate' END, "
        "promoted_by = CASE WHEN NOT moving AND (n_frames >= 2 OR n_sites >= 2) "
        "THEN 'detections' END, "
        "promoted_at = CASE WHEN NOT moving AND (n_frames >= 2 OR n_sites >= 2) "
        "THEN last_seen END"
    )
    with op.batch_alter_table("followups") as batch:
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("explanation", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("exposures_done", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("exposures_total", sa.Integer(), nullable=True))
    with op.batch_alter_table("followup_statuses") as batch:
        batch.add_column(
            sa.Column("exposures_done", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("exposures_total", sa.Integer(), nullable=True))
    op.create_table(
        "target_comments",
        sa.Column("comment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("at", utc(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.target_id"]),
        sa.PrimaryKeyConstraint("comment_id"),
    )
    op.create_index(
        op.f("ix_target_comments_target_id"), "target_comments", ["target_id"], unique=False
    )
    op.create_table(
        "candidate_labels",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("at", utc(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["candidates.message_id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(op.f("ix_candidate_labels_at"), "candidate_labels", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_candidate_labels_at"), table_name="candidate_labels")
    op.drop_table("candidate_labels")
    op.drop_index(op.f("ix_target_comments_target_id"), table_name="target_comments")
    op.drop_table("target_comments")
    with op.batch_alter_table("followup_statuses") as batch:
        batch.drop_column("exposures_total")
        batch.drop_column("exposures_done")
    with op.batch_alter_table("followups") as batch:
        batch.drop_column("exposures_total")
        batch.drop_column("exposures_done")
        batch.drop_column("explanation")
        batch.drop_column("plan")
    with op.batch_alter_table("targets") as batch:
        batch.drop_index(batch.f("ix_targets_status"))
        batch.drop_column("promoted_by")
        batch.drop_column("promoted_at")
        batch.drop_column("status")
    with op.batch_alter_table("frame_scores") as batch:
        batch.drop_column("thumbnail_png_b64")
    with op.batch_alter_table("heartbeats") as batch:
        batch.drop_column("conditions")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("conditions")

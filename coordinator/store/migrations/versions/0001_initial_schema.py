"""Initial schema: sites, frame scores and rejections, heartbeats, targets, candidates,
follow-ups and their statuses.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordinator.store.tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create every table and index of the first schema.
    Long because it is the schema as first released, one `create_table` per table: a released
    migration is never edited or split, or databases made with it would no longer match."""
    op.create_table(
        "followup_statuses",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reported_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        op.f("ix_followup_statuses_request_id"), "followup_statuses", ["request_id"], unique=False
    )
    op.create_table(
        "frame_rejections",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("rejected_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("file_name", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        op.f("ix_frame_rejections_site_id"), "frame_rejections", ["site_id"], unique=False
    )
    op.create_table(
        "frame_scores",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("scored_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("observed_at", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.Column("ingested_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("file_name", sa.String(length=512), nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("fwhm_arcsec", sa.Float(), nullable=True),
        sa.Column("background_adu", sa.Float(), nullable=False),
        sa.Column("transparency", sa.Float(), nullable=True),
        sa.Column("source_count", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(
        "ix_frame_scores_site_time", "frame_scores", ["site_id", "scored_at"], unique=False
    )
    op.create_table(
        "heartbeats",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("sent_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.Column("frames_scored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index("ix_heartbeats_site_time", "heartbeats", ["site_id", "sent_at"], unique=False)
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("lat_deg", sa.Float(), nullable=True),
        sa.Column("lon_deg", sa.Float(), nullable=True),
        sa.Column("height_m", sa.Float(), nullable=True),
        sa.Column("horizon_limit_deg", sa.Float(), nullable=True),
        sa.Column("config_at", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.Column("heartbeat_at", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.Column("agent_version", sa.String(length=32), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("queue_depth", sa.Integer(), nullable=True),
        sa.Column("link_state", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "targets",
        sa.Column("target_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=False),
        sa.Column("dec_deg", sa.Float(), nullable=False),
        sa.Column("first_seen", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("last_seen", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("n_detections", sa.Integer(), nullable=False),
        sa.Column("n_sites", sa.Integer(), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("moving", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("mark", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("target_id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "candidates",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("observed_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=False),
        sa.Column("frame_file_name", sa.String(length=512), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=False),
        sa.Column("dec_deg", sa.Float(), nullable=False),
        sa.Column("flux_adu", sa.Float(), nullable=False),
        sa.Column("flux_err_adu", sa.Float(), nullable=False),
        sa.Column("snr", sa.Float(), nullable=False),
        sa.Column("mag", sa.Float(), nullable=True),
        sa.Column("mag_err", sa.Float(), nullable=True),
        sa.Column("filter", sa.String(length=32), nullable=True),
        sa.Column("real_bogus", sa.Float(), nullable=False),
        sa.Column("cutouts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.target_id"],
        ),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(op.f("ix_candidates_target_id"), "candidates", ["target_id"], unique=False)
    op.create_table(
        "followups",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("not_before", coordinator.store.tables.UtcDateTime(), nullable=True),
        sa.Column("deadline", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("sent_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("updated_at", coordinator.store.tables.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.target_id"],
        ),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index(op.f("ix_followups_state"), "followups", ["state"], unique=False)
    op.create_index(op.f("ix_followups_target_id"), "followups", ["target_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_followups_target_id"), table_name="followups")
    op.drop_index(op.f("ix_followups_state"), table_name="followups")
    op.drop_table("followups")
    op.drop_index(op.f("ix_candidates_target_id"), table_name="candidates")
    op.drop_table("candidates")
    op.drop_table("targets")
    op.drop_table("sites")
    op.drop_index("ix_heartbeats_site_time", table_name="heartbeats")
    op.drop_table("heartbeats")
    op.drop_index("ix_frame_scores_site_time", table_name="frame_scores")
    op.drop_table("frame_scores")
    op.drop_index(op.f("ix_frame_rejections_site_id"), table_name="frame_rejections")
    op.drop_table("frame_rejections")
    op.drop_index(op.f("ix_followup_statuses_request_id"), table_name="followup_statuses")
    op.drop_table("followup_statuses")

"""The coordinator's tables (SQLAlchemy 2 declarative), one per thing the fleet reports or plans.

Every ingested message is keyed by its stable `message_id`, so a redelivery inserts nothing.
Times are stored as naive UTC and read back timezone-aware (`UtcDateTime`).
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from protos.frames import THUMBNAIL_MAX_CHARS

MESSAGE_ID = String(80)
SITE_ID = String(32)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored without zone so SQLite and PostgreSQL agree."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Metadata of every coordinator table."""

    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}  # noqa: RUF012


def table_of(model: type[Base]) -> Table:
    """The `Table` a mapped class maps, for Core statements (`Model.__table__` is typed as any
    `FromClause`, which has no `insert` or `update`)."""
    table = model.__table__
    assert isinstance(table, Table), f"{model.__name__} maps {type(table).__name__}, not a Table"
    return table


RESTARTS_MAX_CHARS = 512


class Site(Base):
    """One telescope: where it is (from SiteConfig) and its latest heartbeat."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(SITE_ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    lat_deg: Mapped[float | None] = mapped_column(Float)
    lon_deg: Mapped[float | None] = mapped_column(Float)
    height_m: Mapped[float | None] = mapped_column(Float)
    horizon_limit_deg: Mapped[float | None] = mapped_column(Float)
    config_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    heartbeat_received_at: Mapped[datetime | None] = mapped_column(
        doc="When the centre stored the latest heartbeat, by its own clock: a site's age is "
        "judged by this, so a site whose clock is wrong is not shown offline for it."
    )
    agent_version: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(32))
    queue_depth: Mapped[int | None] = mapped_column(Integer)
    link_state: Mapped[str | None] = mapped_column(String(16))
    restarts: Mapped[str | None] = mapped_column(
        String(RESTARTS_MAX_CHARS),
        doc="Parts of the agent restarted since it started: 'nats-server=2,worker=1'.",
    )
    failed_frames: Mapped[int | None] = mapped_column(Integer)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="The latest heartbeat's weather and safety (protos.SiteConditions)."
    )


class FrameScoreRow(Base):
    """One scored frame, flattened to the figures the console aggregates."""

    __tablename__ = "frame_scores"
    __table_args__ = (Index("ix_frame_scores_site_time", "site_id", "scored_at"),)

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    scored_at: Mapped[datetime]
    observed_at: Mapped[datetime | None]
    ingested_at: Mapped[datetime]
    file_name: Mapped[str] = mapped_column(String(512))
    frame_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    fwhm_arcsec: Mapped[float | None] = mapped_column(Float)
    background_adu: Mapped[float] = mapped_column(Float)
    transparency: Mapped[float | None] = mapped_column(Float)
    source_count: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[str] = mapped_column(String(256), doc="Comma-separated reason names.")
    thumbnail_png_b64: Mapped[str | None] = mapped_column(String(THUMBNAIL_MAX_CHARS))


class FrameRejectionRow(Base):
    """A file a site could not score."""

    __tablename__ = "frame_rejections"

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(SITE_ID, index=True)
    rejected_at: Mapped[datetime]
    file_name: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(1024))


class FrameSearchRow(Base):
    """A site's record of one frame's transient search: searched (with how many candidates it
    published) or not, and why not."""

    __tablename__ = "frame_searches"
    __table_args__ = (
        Index("ix_frame_searches_site_time", "site_id", "searched_at"),
        Index("ix_frame_searches_pointing_dec", "pointing_dec_deg"),  # upper limits' dec band
    )

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    searched_at: Mapped[datetime]
    observed_at: Mapped[datetime | None]
    file_name: Mapped[str] = mapped_column(String(512))
    frame_sha256: Mapped[str] = mapped_column(String(64), index=True)
    score_message_id: Mapped[str] = mapped_column(String(128))
    attempted: Mapped[bool] = mapped_column(Boolean)
    candidates: Mapped[int] = mapped_column(Integer)
    skipped_reason: Mapped[str | None] = mapped_column(String(256))
    search_ms: Mapped[float | None] = mapped_column(Float)
    filter: Mapped[str | None] = mapped_column(String(32))
    pointing_ra_deg: Mapped[float | None] = mapped_column(Float)
    pointing_dec_deg: Mapped[float | None] = mapped_column(Float)
    searched_radius_deg: Mapped[float | None] = mapped_column(
        Float, doc="Radius around the pointing the search surely covered."
    )
    limiting_mag: Mapped[float | None] = mapped_column(
        Float, doc="5-sigma limit of the difference image: the source pages' upper limits."
    )


class HeartbeatRow(Base):
    """Every heartbeat received (the site row keeps only the latest)."""

    __tablename__ = "heartbeats"
    __table_args__ = (Index("ix_heartbeats_site_time", "site_id", "sent_at"),)

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    sent_at: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(32))
    queue_depth: Mapped[int] = mapped_column(Integer)
    frames_scored: Mapped[int] = mapped_column(Integer)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TargetStatus(StrEnum):
    """What a fused target is: a `candidate` (a single detection, not yet believed), a `source`
    (detected in two or more frames or at two or more sites, or saved by an operator), a
    `tracklet` (a moving object's linked detections), or `rejected` by an operator."""

    CANDIDATE = "candidate"
    SOURCE = "source"
    TRACKLET = "tracklet"
    REJECTED = "rejected"


OPERATOR_PREFIX = "user:"
"""How `Target.promoted_by` begins when an operator decided the status ('user:<name>'): that
decision stands (fusion never changes it) and such a source is followed up."""


class Target(Base):
    """Candidates from any site or night within the match radius, fused; what they amount to is
    its `status` (only sources are followed up)."""

    __tablename__ = "targets"
    __table_args__ = (Index("ix_targets_status_dec", "status", "dec_deg"),)  # sources nearby

    target_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ra_deg: Mapped[float] = mapped_column(Float)
    dec_deg: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    n_detections: Mapped[int] = mapped_column(Integer)
    n_sites: Mapped[int] = mapped_column(Integer)
    n_frames: Mapped[int] = mapped_column(Integer)
    moving: Mapped[bool] = mapped_column(default=False)
    confidence: Mapped[float] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    mark: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(
        String(16), default=TargetStatus.CANDIDATE.value, index=True
    )
    promoted_at: Mapped[datetime | None]
    promoted_by: Mapped[str | None] = mapped_column(
        String(80), doc="'detections' or 'user:<name>': what made it a source."
    )


class CandidateRow(Base):
    """One site's detection of a transient, linked to the target it was fused into."""

    __tablename__ = "candidates"

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.target_id"), index=True)
    observed_at: Mapped[datetime] = mapped_column(index=True)
    frame_sha256: Mapped[str] = mapped_column(String(64))
    frame_file_name: Mapped[str] = mapped_column(String(512))
    ra_deg: Mapped[float] = mapped_column(Float)
    dec_deg: Mapped[float] = mapped_column(Float)
    flux_adu: Mapped[float] = mapped_column(Float)
    flux_err_adu: Mapped[float] = mapped_column(Float)
    snr: Mapped[float] = mapped_column(Float)
    mag: Mapped[float | None] = mapped_column(Float)
    mag_err: Mapped[float | None] = mapped_column(Float)
    filter: Mapped[str | None] = mapped_column(String(32))
    real_bogus: Mapped[float] = mapped_column(Float)
    cutouts: Mapped[dict[str, Any]] = mapped_column(JSON)


class FollowUp(Base):
    """One follow-up request the coordinator planned for a target at a site."""

    __tablename__ = "followups"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.target_id"), index=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    not_before: Mapped[datetime | None]
    deadline: Mapped[datetime]
    sent_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(256), default="")
    plan: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="The exposure plan sent (protos.ExposurePlan)."
    )
    explanation: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="Why this site and time: constraints met, scores, expected quality."
    )
    exposures_done: Mapped[int] = mapped_column(Integer, default=0)
    exposures_total: Mapped[int | None] = mapped_column(Integer)


class FollowUpStatusRow(Base):
    """A site's report on a follow-up request."""

    __tablename__ = "followup_statuses"

    message_id: Mapped[str] = mapped_column(MESSAGE_ID, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    state: Mapped[str] = mapped_column(String(16))
    reported_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(256))
    exposures_done: Mapped[int] = mapped_column(Integer, default=0)
    exposures_total: Mapped[int | None] = mapped_column(Integer)


class FollowUpCommand(Base):
    """A command to a site about a follow-up (request, cancel, re-prioritise), written in the same
    transaction as the change that calls for it and published by the dispatcher (an outbox): a
    coordinator that stops in between still sends it after its restart, under the same
    `message_id`, so the bus keeps it once."""

    __tablename__ = "followup_commands"

    command_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(MESSAGE_ID, unique=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, doc="The message, as JSON.")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)


COMMENT_MAX_CHARS = 2000


class TargetComment(Base):
    """An operator's comment on a target (the source page shows them in order)."""

    __tablename__ = "target_comments"

    comment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.target_id"), index=True)
    at: Mapped[datetime]
    user_name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(COMMENT_MAX_CHARS))


class CandidateLabel(Base):
    """An operator's label on one detection ('real', 'bogus', 'asteroid', 'variable'): the
    latest per detection counts, and labels go back to the sites' training samples."""

    __tablename__ = "candidate_labels"

    message_id: Mapped[str] = mapped_column(ForeignKey("candidates.message_id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(16))
    user_name: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)


USER_NAME = String(64)


class ConsoleUser(Base):
    """Someone (or a script) allowed into the ops console: a role and the SHA-256 of the user's
    token. The token itself is shown once, when it is issued, and never stored
    (`coordinator.store.users`). A revoked user keeps its row, so the action log still names it."""

    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(USER_NAME, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A browser's console session: the SHA-256 of its random id (the cookie's value), whose it
    is, how it was opened ('login' with a token, or 'proxy' for an authenticating proxy's user,
    where it only carries the CSRF token), and when it ends."""

    __tablename__ = "console_sessions"

    session_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(USER_NAME, index=True)
    via: Mapped[str] = mapped_column(String(8))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ActionLogRow(Base):
    """One console action: who (user, role, and how they were authenticated), what, on what,
    with which outcome, when, and the request's id."""

    __tablename__ = "action_log"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_name: Mapped[str] = mapped_column(USER_NAME, index=True)
    role: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(String(256), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(64))


class FrameLabel(Base):
    """An operator's quality label on a frame ('good', 'medium', 'bad'): all are kept, the latest
    per frame counts, and it trains the quality model with the highest weight."""

    __tablename__ = "frame_labels"

    label_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    frame_sha256: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str] = mapped_column(SITE_ID)
    label: Mapped[str] = mapped_column(String(8))
    user_name: Mapped[str] = mapped_column(USER_NAME)
    at: Mapped[datetime] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(String(256))

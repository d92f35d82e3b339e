"""Operators' quality labels on frames ('good', 'medium', 'bad'): writing one, a frame's labels
newest first, and the label that counts (the latest) per frame, for the site page and for the
quality model's training samples. A frame is named in the console by its score's message id and
labelled by its sha256 (the identity the sites' training samples carry)."""

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Connection, ScalarSelect, func, insert, select

from coordinator.store.tables import FrameLabel, FrameScoreRow, table_of
from protos.frames import QualityLabel

frame_labels = table_of(FrameLabel)
scores = table_of(FrameScoreRow)

NOTE_MAX_CHARS = 256
"""An operator's note on a label: a line or two on why (the column holds 256 characters)."""


class FrameLabelView(BaseModel):
    """One operator's label on a frame."""

    model_config = ConfigDict(frozen=True)

    frame_sha256: str
    site_id: str
    label: QualityLabel
    user_name: str
    at: datetime
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


def scored_frame(conn: Connection, message_id: str) -> tuple[str, str] | None:
    """The (site, frame sha256) of a frame score, or None if there is no such score."""
    row = conn.execute(
        select(scores.c.site_id, scores.c.frame_sha256).where(scores.c.message_id == message_id)
    ).first()
    return None if row is None else (row.site_id, row.frame_sha256)


def add_frame_label(conn: Connection, label: FrameLabelView) -> None:
    """Keep an operator's label (it counts from now: the latest per frame does)."""
    conn.execute(insert(frame_labels).values(**label.model_dump(mode="python")))


def _columns() -> list[ColumnElement[object]]:
    """A label's columns, as `FrameLabelView` has them."""
    return [c for c in frame_labels.c if c.name != "label_id"]


def _latest() -> ScalarSelect[int]:
    """The id of each frame's latest label (a frame's labels are few: a person gives them)."""
    return (
        select(func.max(frame_labels.c.label_id))
        .group_by(frame_labels.c.frame_sha256)
        .scalar_subquery()
    )


def labels_of_frame(conn: Connection, frame_sha256: str) -> list[FrameLabelView]:
    """Every label given a frame, newest (the one that counts) first."""
    rows = conn.execute(
        select(*_columns())
        .where(frame_labels.c.frame_sha256 == frame_sha256)
        .order_by(frame_labels.c.label_id.desc())
    ).all()
    return [FrameLabelView.model_validate(r._asdict()) for r in rows]


def latest_labels(conn: Connection) -> list[FrameLabelView]:
    """The label that counts per labelled frame (its latest), oldest first."""
    rows = conn.execute(
        select(*_columns())
        .where(frame_labels.c.label_id.in_(_latest()))
        .order_by(frame_labels.c.label_id)
    ).all()
    return [FrameLabelView.model_validate(r._asdict()) for r in rows]


def labels_of_scores(conn: Connection, message_ids: Iterable[str]) -> dict[str, FrameLabelView]:
    """The label that counts for each of these frame scores' frames that has one, by score id."""
    rows = conn.execute(
        select(scores.c.message_id.label("score_id"), *_columns())
        .join(scores, scores.c.frame_sha256 == frame_labels.c.frame_sha256)
        .where(frame_labels.c.label_id.in_(_latest()), scores.c.message_id.in_(list(message_ids)))
    ).all()
    views = {}
    for row in rows:
        fields = row._asdict()
        views[fields.pop("score_id")] = FrameLabelView.model_validate(fields)
    return views

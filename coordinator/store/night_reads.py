"""Read queries behind the night report: what one site did between two times (frames with
their labels and reasons, rejections, candidates, sources, follow-ups), counted in the database
and with the frames' times as one numpy array (10,000 frames in tens of milliseconds)."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Connection, String, cast, func, select

from coordinator.store.tables import (
    CandidateRow,
    FollowUp,
    FrameRejectionRow,
    FrameScoreRow,
    Target,
    TargetStatus,
    table_of,
)

scores = table_of(FrameScoreRow)
rejections = table_of(FrameRejectionRow)
candidates = table_of(CandidateRow)
targets = table_of(Target)
followups = table_of(FollowUp)


@dataclass
class NightActivity:
    """What one site did in a time window: its frames' times (UTC, oldest first), frames per
    label and per reason, and counts of the rest. `source_ids` are the sources its candidates
    went into."""

    times: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[us]"))
    labels: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    candidates: int = 0
    source_ids: set[int] = field(default_factory=set)
    followups: dict[str, int] = field(default_factory=dict)


def night_activity(conn: Connection, site_id: str, start: datetime, end: datetime) -> NightActivity:
    """A site's frames, rejections, candidates, sources and follow-ups from `start` to `end`."""
    in_night = (scores.c.site_id == site_id, scores.c.scored_at >= start, scores.c.scored_at < end)
    # the stored naive UTC times as text ("2026-12-03 21:04:05.123456" in both databases),
    # parsed by numpy at once: no datetime object per frame
    times = conn.execute(
        select(cast(scores.c.scored_at, String)).where(*in_night).order_by(scores.c.scored_at)
    ).scalars()
    labels = conn.execute(
        select(scores.c.label, func.count()).where(*in_night).group_by(scores.c.label)
    ).all()
    reasons: Counter[str] = Counter()
    for joined, n in conn.execute(
        select(scores.c.reasons, func.count()).where(*in_night).group_by(scores.c.reasons)
    ).all():
        for name in filter(None, joined.split(",")):
            reasons[name] += int(n)
    rejected = conn.execute(
        select(func.count()).where(
            rejections.c.site_id == site_id,
            rejections.c.rejected_at >= start,
            rejections.c.rejected_at < end,
        )
    ).scalar_one()
    in_window = (
        candidates.c.site_id == site_id,
        candidates.c.observed_at >= start,
        candidates.c.observed_at < end,
    )
    n_candidates = conn.execute(select(func.count()).where(*in_window)).scalar_one()
    source_ids = conn.execute(
        select(candidates.c.target_id)
        .join(targets, targets.c.target_id == candidates.c.target_id)
        .where(*in_window, targets.c.status == TargetStatus.SOURCE.value)
        .distinct()
    ).scalars()
    states = conn.execute(
        select(followups.c.state, func.count())
        .where(
            followups.c.site_id == site_id,
            followups.c.sent_at >= start,
            followups.c.sent_at < end,
        )
        .group_by(followups.c.state)
    ).all()
    return NightActivity(
        times=np.array(list(times), dtype="datetime64[us]"),
        labels=Counter({label: int(n) for label, n in labels}),
        reasons=reasons,
        rejected=int(rejected),
        candidates=int(n_candidates),
        source_ids={int(i) for i in source_ids},
        followups={state: int(n) for state, n in states},
    )

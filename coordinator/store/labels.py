"""Operators' labels on detections ('real', 'bogus', 'asteroid', 'variable'), what a label makes
of its target (saved as a source, or rejected, with its class), and the labels since a time,
for the fleet's training samples to pull."""

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from coordinator.source_views import LabelView, OperatorLabel
from coordinator.store import actions
from coordinator.store.tables import CandidateLabel, CandidateRow, table_of

labels = table_of(CandidateLabel)
candidates = table_of(CandidateRow)

MARK_OF: dict[OperatorLabel, str] = {
    OperatorLabel.VARIABLE: "variable",
    OperatorLabel.ASTEROID: "asteroid",
}
"""The classification shown on the target for the labels that name one."""
SAVED = frozenset({OperatorLabel.REAL, OperatorLabel.VARIABLE})
"""Labels that save a target as a source; the others (bogus, and an asteroid, which is real
but no transient to follow up) reject it, which also cancels its open follow-ups."""


def label_target(
    conn: Connection, target_id: int, label: OperatorLabel, user_name: str, at: datetime
) -> bool:
    """Label every detection of a target (the latest label per detection counts), then save or
    reject the target as the label says (`actions.save_target`, `actions.reject_target`) and
    mark it with the class the label names; False if there is no such target."""
    decide = actions.save_target if label in SAVED else actions.reject_target
    if not decide(conn, target_id, user_name, at):
        return False
    if label in MARK_OF:
        actions.mark_target(conn, target_id, MARK_OF[label])
    message_ids = list(
        conn.execute(
            select(candidates.c.message_id).where(candidates.c.target_id == target_id)
        ).scalars()
    )
    conn.execute(delete(labels).where(labels.c.message_id.in_(message_ids)))
    if message_ids:
        conn.execute(
            insert(labels),
            [
                {"message_id": m, "label": label.value, "user_name": user_name, "at": at}
                for m in message_ids
            ],
        )
    return True


def labels_since(conn: Connection, since: datetime, limit: int) -> list[LabelView]:
    """Labels given at or after `since`, oldest first, at most `limit` (page on by the last
    one's time), each with its detection and where its cutouts are."""
    rows = conn.execute(
        select(
            labels.c.message_id,
            labels.c.label,
            labels.c.user_name,
            labels.c.at,
            candidates.c.site_id,
            candidates.c.frame_sha256,
            candidates.c.observed_at,
            candidates.c.real_bogus,
        )
        .join(candidates, candidates.c.message_id == labels.c.message_id)
        .where(labels.c.at >= since)
        .order_by(labels.c.at, labels.c.message_id)
        .limit(limit)
    ).all()
    return [LabelView(**r._asdict(), cutouts_url=f"/api/cutouts/{r.message_id}") for r in rows]

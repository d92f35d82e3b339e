"""Operators' labels on detections ('real', 'bogus', 'asteroid', 'variable'), what a label makes
of its target (saved as a source, or rejected, with its class), and the label feed the fleet's
training samples pull, paged by a (time, detection id) cursor, and every label with its
detection's stamps for retraining (`labels_with_stamps`)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, delete, insert, or_, select

from coordinator.source_views import LabelCursor, LabelPage, LabelView, OperatorLabel
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


def _labelled_detections(*columns: Any) -> Select[Any]:
    """Each label with its detection's site, frame and real/bogus score, and `columns`, in
    (time, detection id) order."""
    return (
        select(
            labels.c.message_id,
            labels.c.label,
            labels.c.user_name,
            labels.c.at,
            candidates.c.site_id,
            candidates.c.frame_sha256,
            candidates.c.real_bogus,
            *columns,
        )
        .join(candidates, candidates.c.message_id == labels.c.message_id)
        .order_by(labels.c.at, labels.c.message_id)
    )


def labels_with_stamps(conn: Connection, batch: int) -> Iterator[dict[str, Any]]:
    """Every label with its detection and the detection's stored cutouts (`cutouts`) and frame
    file name, oldest first, streamed `batch` rows at a time (the stamps are ~11 kB each)."""
    query = _labelled_detections(candidates.c.frame_file_name, candidates.c.cutouts)
    for row in conn.execution_options(yield_per=batch).execute(query):
        yield row._asdict()


def label_page(conn: Connection, after: LabelCursor, limit: int) -> LabelPage:
    """Labels after the cursor in (time, detection id) order, at most `limit`, each with its
    detection and where its cutouts are, and the cursor after the last of them. The time range
    comes first so the `at` index bounds the scan."""
    rows = conn.execute(
        _labelled_detections(candidates.c.observed_at)
        .where(
            labels.c.at >= after.at,
            or_(labels.c.at > after.at, labels.c.message_id > after.message_id),
        )
        .limit(limit)
    ).all()
    items = [LabelView(**r._asdict(), cutouts_url=f"/api/cutouts/{r.message_id}") for r in rows]
    last = LabelCursor(at=items[-1].at, message_id=items[-1].message_id) if items else after
    return LabelPage(items=items, next=last.encode())

"""The life of a follow-up request at the coordinator, and which reports move it forward."""

from enum import StrEnum

from protos import FollowUpState


class FollowUpPhase(StrEnum):
    """Where a follow-up request stands, as the coordinator sees it."""

    SENT = "sent"
    ACCEPTED = "accepted"
    OBSERVING = "observing"
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REPLANNED = "replanned"


ACTIVE_PHASES = frozenset({FollowUpPhase.SENT, FollowUpPhase.ACCEPTED, FollowUpPhase.OBSERVING})
_RANK = {
    FollowUpPhase.SENT: 0,
    FollowUpPhase.ACCEPTED: 1,
    FollowUpPhase.OBSERVING: 2,
    FollowUpPhase.DONE: 3,
    FollowUpPhase.FAILED: 3,
}


def phase_after_report(current: FollowUpPhase, reported: FollowUpState) -> FollowUpPhase | None:
    """The new phase after a site's report, or None if the report changes nothing
    (a late or repeated report, or one about a request no longer active)."""
    new = FollowUpPhase(reported.value)
    if current not in ACTIVE_PHASES or _RANK[new] <= _RANK[current]:
        return None
    return new

"""The life of a follow-up request at the coordinator, and which reports move it forward.

sent → accepted → observing (exposures k of N, k only growing) → done / failed / cancelled.
An operator's cancel puts an active request in `cancelling` until the site answers `cancelled`
(or its final state, if it had already finished); a report about a request the coordinator
retired (timed out, re-planned elsewhere) is kept but moves nothing.
"""

from dataclasses import dataclass
from enum import StrEnum

from protos import FollowUpState


class FollowUpPhase(StrEnum):
    """Where a follow-up request stands, as the coordinator sees it."""

    SENT = "sent"
    ACCEPTED = "accepted"
    OBSERVING = "observing"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REPLANNED = "replanned"


ACTIVE_PHASES = frozenset({FollowUpPhase.SENT, FollowUpPhase.ACCEPTED, FollowUpPhase.OBSERVING})
"""Requests a site is working on, which the dispatcher tracks and may retire."""
OPEN_PHASES = ACTIVE_PHASES | {FollowUpPhase.CANCELLING}
"""Requests whose site may still report something that moves them."""
FINAL_PHASES = frozenset({FollowUpPhase.DONE, FollowUpPhase.FAILED, FollowUpPhase.CANCELLED})
_RANK = {
    FollowUpPhase.SENT: 0,
    FollowUpPhase.ACCEPTED: 1,
    FollowUpPhase.OBSERVING: 2,
    FollowUpPhase.CANCELLING: 2,
    FollowUpPhase.DONE: 3,
    FollowUpPhase.FAILED: 3,
    FollowUpPhase.CANCELLED: 3,
}


@dataclass(frozen=True)
class Progress:
    """A request's phase and the exposures its site has taken."""

    phase: FollowUpPhase
    exposures_done: int


def progress_after_report(
    current: Progress, reported: FollowUpState, exposures_done: int
) -> Progress | None:
    """The request's progress after a site's report, or None if the report changes nothing: a
    late or repeated one (a lower state, or the same state with no more exposures), one about a
    request that is no longer open, or, while cancelling, anything but a final answer."""
    if current.phase not in OPEN_PHASES:
        return None
    new = FollowUpPhase(reported.value)
    if current.phase is FollowUpPhase.CANCELLING and new not in FINAL_PHASES:
        return None
    exposures = max(current.exposures_done, exposures_done)
    if _RANK[new] < _RANK[current.phase]:
        return None
    if _RANK[new] == _RANK[current.phase] and exposures == current.exposures_done:
        return None
    return Progress(new, exposures)

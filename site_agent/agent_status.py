"""What a site agent has done so far: the messages it published, counted as each one settles,
and the `AgentStatus` the demo's live table, the heartbeat and tests read."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from protos import (
    FleetMessage,
    FrameRejected,
    FrameScore,
    FrameSearched,
    LinkState,
    TransientCandidate,
)
from protos.base import utc_now


class AgentStatus(BaseModel):
    """What the agent has done so far (for the demo's live table and for tests)."""

    model_config = ConfigDict(frozen=True)

    site_id: str
    frames_scored: int
    frames_rejected: int
    labels: dict[str, int]
    last_frame_at: datetime | None
    queue_depth: int
    link_state: LinkState
    candidates: int
    frames_searched: int
    """Frames whose transient search (or the reason there was none) is published."""


@dataclass
class PublishedCounts:
    """The agent's published messages, counted by kind (scores by label)."""

    labels: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    candidates: int = 0
    searched: int = 0
    last_frame_at: datetime | None = None

    def count(self, message: FleetMessage) -> None:
        """Count one message once it is published (and its frame settled)."""
        if isinstance(message, FrameScore):
            self.labels[message.label.value] += 1
            self.last_frame_at = utc_now()
        elif isinstance(message, FrameRejected):
            self.rejected += 1
        elif isinstance(message, TransientCandidate):
            self.candidates += 1
        elif isinstance(message, FrameSearched):
            self.searched += 1

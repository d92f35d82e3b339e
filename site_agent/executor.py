"""How a site carries out follow-up requests: the `FollowUpExecutor` interface the agent talks to,
the on-disk records of requests, and the hand-off executor for observatories with their own
scheduler.

Two executors implement the interface: `HandOffExecutor` writes each accepted request as a JSON
file for the observatory's scheduler (`site_agent.followups.FollowUpQueue`) and reports the request
done when a frame naming it is scored; `site_agent.alpaca_executor.AlpacaExecutor` drives the
telescope itself through ASCOM Alpaca. Both answer every command with a `FollowUpStatus`: a
request is accepted or refused with its reason (deadline passed, duplicate id), a cancel of an
unknown request is reported failed with reason "unknown request id", and a cancelled request is
never carried out.
"""

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protos import (
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    FrameScore,
    QualityLabel,
    SiteConditions,
    stable_message_id,
)
from protos.base import utc_now
from site_agent.followups import FollowUpQueue

log = logging.getLogger(__name__)

FINISHED = (FollowUpState.DONE, FollowUpState.FAILED, FollowUpState.CANCELLED)
"""States a request never leaves."""
UNKNOWN_REQUEST = "unknown request id"


class FollowUpExecutor(Protocol):
    """What the agent asks of whatever carries out its follow-ups."""

    async def submit(self, request: FollowUpRequest) -> FollowUpStatus:
        """Accept a request (queued before the answer goes out) or refuse it with a reason."""
        ...

    def cancel(self, command: FollowUpCancel) -> FollowUpStatus:
        """Withdraw a request: it is never started again (an exposure under way is aborted)."""
        ...

    def reprioritise(self, command: FollowUpReprioritise) -> FollowUpStatus:
        """Change a queued request's priority; answers with its current status."""
        ...

    def frame_scored(self, request_id: str, frame: str, score: FrameScore) -> FollowUpStatus | None:
        """A frame taken for a request was scored: the request's report, if it changed."""
        ...

    def reported(self, status: FollowUpStatus) -> None:
        """A report sent with a frame's score was acknowledged."""
        ...

    async def run(self) -> None:
        """Carry out the queue for ever (returns at once when someone else drives the telescope)."""
        ...

    async def conditions(self) -> SiteConditions | None:
        """The weather and safety the telescope's devices report now (None: none known)."""
        ...


def followup_status(
    site_id: str,
    request_id: str,
    state: FollowUpState,
    *,
    reason: str | None = None,
    done: int = 0,
    total: int | None = None,
    frames: list[str] | None = None,
    variant: str = "",
) -> FollowUpStatus:
    """A report on a request; its id is stable per state, exposures done and `variant` (a
    refused duplicate, a re-prioritisation), so a resend is stored once."""
    parts = [request_id, state.value]
    if state is FollowUpState.OBSERVING:
        parts.append(str(done))
    if variant:
        parts.append(variant)
    return FollowUpStatus(
        message_id=stable_message_id(FollowUpStatus.KIND, site_id, *parts),
        site_id=site_id,
        request_id=request_id,
        state=state,
        reason=reason,
        exposures_done=done,
        exposures_total=total,
        frames=frames or [],
    )


def unknown_request(site_id: str, command: FollowUpCancel | FollowUpReprioritise) -> FollowUpStatus:
    """The answer to a cancel or new priority for a request the site does not hold."""
    return followup_status(
        site_id,
        command.request_id,
        FollowUpState.FAILED,
        reason=UNKNOWN_REQUEST,
        variant=f"unknown-{command.message_id}",
    )


def deadline_refusal(request: FollowUpRequest, now: datetime | None = None) -> str | None:
    """Why a request cannot be accepted on its timing alone (None: it can)."""
    if request.deadline <= (now or utc_now()):
        return "deadline already passed"
    return None


class FollowUpRecord(BaseModel):
    """A request as the site carries it out, kept on disk across restarts."""

    model_config = ConfigDict(extra="forbid")

    request: FollowUpRequest
    state: FollowUpState = FollowUpState.ACCEPTED
    priority: int = Field(ge=1, le=10)
    reason: str | None = None
    exposures_done: int = Field(default=0, ge=0)
    frames: list[str] = Field(default_factory=list)
    """Files written for the request, in order."""
    scored: dict[str, str] = Field(default_factory=dict)
    """Frames of the request scored so far, with their quality label."""
    updated_at: datetime = Field(default_factory=utc_now)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def total(self) -> int:
        return self.request.plan.count

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class RecordBook:
    """The site's follow-up records, one JSON file each under `folder` (written whole, then
    renamed into place), with an in-memory copy."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records: dict[str, FollowUpRecord] = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                record = FollowUpRecord.model_validate_json(path.read_bytes())
            except (OSError, ValidationError) as exc:
                log.warning("unreadable follow-up record file=%s error=%s", path, exc)
                continue
            self.records[record.request_id] = record

    def save(self, record: FollowUpRecord) -> None:
        """Keep a record (replacing the one of the same request)."""
        record.updated_at = utc_now()
        self.records[record.request_id] = record
        self.folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in record.request_id)
        path = self.folder / f"{safe}.json"
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")  # saves may overlap
        partial.write_text(record.model_dump_json(indent=2))
        partial.rename(path)

    def get(self, request_id: str) -> FollowUpRecord | None:
        return self.records.get(request_id)


class HandOffExecutor:
    """For an observatory with its own scheduler: accepted requests become JSON files in its
    queue folder; a scored frame naming a request reports it done (failed when graded bad), and
    once that report is acknowledged the file goes. Cancel removes the file; a new priority is
    written into it."""

    def __init__(self, site_id: str, queue: FollowUpQueue) -> None:
        self.site_id = site_id
        self.queue = queue

    async def submit(self, request: FollowUpRequest) -> FollowUpStatus:
        rid = request.request_id
        refusal = deadline_refusal(request)
        if refusal is not None:
            return followup_status(self.site_id, rid, FollowUpState.FAILED, reason=refusal)
        queued = self.queue.get(rid)
        if queued is not None and queued.message_id != request.message_id:
            log.warning(
                "duplicate follow-up request refused site=%s request_id=%s", self.site_id, rid
            )
            return followup_status(
                self.site_id,
                rid,
                FollowUpState.ACCEPTED,
                reason="duplicate request id refused: the site already holds this request",
                variant=f"duplicate-{request.message_id}",
            )
        self.queue.add(request)  # queued for the telescope before we say yes
        return followup_status(self.site_id, rid, FollowUpState.ACCEPTED)

    def cancel(self, command: FollowUpCancel) -> FollowUpStatus:
        rid = command.request_id
        if self.queue.get(rid) is None:
            log.warning("cancel of an unknown follow-up site=%s request_id=%s", self.site_id, rid)
            return unknown_request(self.site_id, command)
        self.queue.remove(rid)
        return followup_status(self.site_id, rid, FollowUpState.CANCELLED, reason=command.reason)

    def reprioritise(self, command: FollowUpReprioritise) -> FollowUpStatus:
        rid = command.request_id
        queued = self.queue.get(rid)
        if queued is None:
            return unknown_request(self.site_id, command)
        self.queue.add(queued.model_copy(update={"priority": command.priority}))
        return followup_status(
            self.site_id,
            rid,
            FollowUpState.ACCEPTED,
            variant=f"priority-{command.message_id}",
        )

    def frame_scored(self, request_id: str, frame: str, score: FrameScore) -> FollowUpStatus | None:
        if self.queue.get(request_id) is None:
            return None
        if score.label is QualityLabel.BAD:
            return followup_status(
                self.site_id, request_id, FollowUpState.FAILED, reason="frame graded bad"
            )
        return followup_status(self.site_id, request_id, FollowUpState.DONE, frames=[frame])

    def reported(self, status: FollowUpStatus) -> None:
        if status.state in FINISHED:
            self.queue.remove(status.request_id)

    async def run(self) -> None:
        return  # the observatory's own scheduler carries the queue out

    async def conditions(self) -> SiteConditions | None:
        return None  # its devices are the observatory's, not ours

"""The site's follow-up queue: accepted requests handed to the telescope's own scheduler, and
the frames that carry them out.

The agent does not drive the telescope. An accepted `FollowUpRequest` is written, atomically, as
`<work_dir>/followups/<request_id>.json`: the hand-off the observatory's scheduler (or the
demo's simulated telescope) reads. A frame whose header names the request (`FOLLOWUP =
'<request_id>'`) carries it out: once the frame is scored the agent reports the request `done`,
or `failed` when the frame was graded bad, and after that report is acknowledged the request
leaves the queue. A restart in between reports it again, under the same message id.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from protos import (
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    FrameScore,
    QualityLabel,
    stable_message_id,
)
from site_agent.pipeline import FrameWork

log = logging.getLogger(__name__)

FOLLOWUP_KEYWORD = "FOLLOWUP"
"""Header keyword naming the follow-up request a frame was taken for."""


class FollowUpQueue:
    """Accepted follow-up requests waiting for the telescope, one JSON file each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, request: FollowUpRequest) -> Path:
        """Queue a request for the telescope (written whole, then renamed into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(request.request_id)
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(request.model_dump_json(indent=2))
        partial.rename(path)
        return path

    def pending(self) -> list[FollowUpRequest]:
        """The queued requests, oldest deadline first (unreadable files are skipped)."""
        requests = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                requests.append(FollowUpRequest.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.warning("unreadable follow-up request file=%s error=%s", path, exc)
        return sorted(requests, key=lambda request: request.deadline)

    def get(self, request_id: str) -> FollowUpRequest | None:
        """A queued request by id."""
        return next((r for r in self.pending() if r.request_id == request_id), None)

    def remove(self, request_id: str) -> None:
        """Take a request off the queue (carried out and reported)."""
        self._path(request_id).unlink(missing_ok=True)

    def _path(self, request_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request_id)
        return self.folder / f"{safe}.json"


def followup_report(site_id: str, request_id: str, score: FrameScore) -> FollowUpStatus:
    """What a scored frame taken for a request says about it: done, or failed if it was bad."""
    if score.label is QualityLabel.BAD:
        state, reason = FollowUpState.FAILED, "frame graded bad"
    else:
        state, reason = FollowUpState.DONE, None
    return FollowUpStatus(
        message_id=stable_message_id(FollowUpStatus.KIND, site_id, request_id, state),
        site_id=site_id,
        request_id=request_id,
        state=state,
        reason=reason,
    )


@dataclass
class ReportFollowUp:
    """A scored frame taken for a queued request: its report goes out with the frame's score."""

    site_id: str
    queue: FollowUpQueue

    async def run(self, work: FrameWork) -> None:
        score, frame = work.message, work.frame
        if not isinstance(score, FrameScore) or frame is None:
            return
        request_id = str(frame.header.get(FOLLOWUP_KEYWORD, "")).strip()
        if request_id and self.queue.get(request_id) is not None:
            report = followup_report(self.site_id, request_id, score)
            work.related.append(report)
            log.info(
                "follow-up observed site=%s request_id=%s state=%s file=%s",
                self.site_id,
                request_id,
                report.state.value,
                frame.identity.file_name,
            )


@dataclass
class CloseFollowUp:
    """After settling: a reported request leaves the queue."""

    queue: FollowUpQueue

    async def run(self, work: FrameWork) -> None:
        for message in work.related:
            if isinstance(message, FollowUpStatus):
                self.queue.remove(message.request_id)

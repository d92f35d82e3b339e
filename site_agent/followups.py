"""The site's follow-up queue: accepted requests handed to the telescope's own scheduler, and
the frames that carry them out.

For an observatory with its own scheduler (`site_agent.executor.HandOffExecutor`) an accepted
`FollowUpRequest` is written, atomically, as `<work_dir>/followups/<request_id>.json`: the
hand-off the observatory's scheduler reads. Whichever executor carries a request out, a frame
whose header names it (`FOLLOWUP = '<request_id>'`) is reported to the executor once scored
(`ReportFollowUp`), and its report goes out with the frame's score; after that report is
acknowledged the executor is told (`CloseFollowUp`). A restart in between reports it again,
under the same message id.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from protos import FollowUpRequest, FollowUpStatus, FrameScore
from site_agent.pipeline import FrameWork

if TYPE_CHECKING:  # the executors use the queue; the stages only call them
    from site_agent.executor import FollowUpExecutor

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
        """The queued requests, most urgent first (priority 1), then by deadline (unreadable
        files are skipped)."""
        requests = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                requests.append(FollowUpRequest.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.warning("unreadable follow-up request file=%s error=%s", path, exc)
        return sorted(requests, key=lambda request: (request.priority, request.deadline))

    def get(self, request_id: str) -> FollowUpRequest | None:
        """A queued request by id."""
        return next((r for r in self.pending() if r.request_id == request_id), None)

    def remove(self, request_id: str) -> None:
        """Take a request off the queue (carried out and reported)."""
        self._path(request_id).unlink(missing_ok=True)

    def _path(self, request_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request_id)
        return self.folder / f"{safe}.json"


@dataclass
class ReportFollowUp:
    """A scored frame taken for a request (`FOLLOWUP` in its header): the executor's report on
    the request goes out with the frame's score."""

    site_id: str
    executor: "FollowUpExecutor"

    async def run(self, work: FrameWork) -> None:
        score, frame = work.message, work.frame
        if not isinstance(score, FrameScore) or frame is None:
            return
        request_id = str(frame.header.get(FOLLOWUP_KEYWORD, "")).strip()
        if not request_id:
            return
        report = self.executor.frame_scored(request_id, frame.identity.file_name, score)
        if report is None:
            return
        work.related.append(report)
        log.info(
            "follow-up observed site=%s request_id=%s state=%s exposures=%d/%s file=%s",
            self.site_id,
            request_id,
            report.state.value,
            report.exposures_done,
            report.exposures_total,
            frame.identity.file_name,
        )


@dataclass
class CloseFollowUp:
    """After settling: the executor learns its reports were acknowledged (a finished request
    leaves the hand-off queue)."""

    executor: "FollowUpExecutor"

    async def run(self, work: FrameWork) -> None:
        for message in work.related:
            if isinstance(message, FollowUpStatus):
                self.executor.reported(message)

"""The transient side of the site's frame path: search each scored frame against its field's
reference, after its score is out, and grow the references from the site's good frames.

The score of a frame never waits for its search (a 4096² search takes seconds, a score a tenth
of one). `SubmitSearch` runs once a frame's score is acknowledged, before the frame is settled,
and puts it in the `SearchLane`'s backlog (on disk: a crash at any point loses nothing). The lane
searches frames one at a time, oldest first, reading each again from its file; it publishes the
frame's `TransientCandidate`s and then its `FrameSearched` (searched or skipped, how many
candidates, why not), and hands good frames to the `ReferenceKeeper`, which in the background
starts the field's reference or replaces a shallower member. Searching comes first, so a frame
is never searched against itself.
"""

import asyncio
import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
from pydantic import ValidationError

from imaging.file_names import printable_name
from imaging.fits_reader import Frame, FrameError, read_frame
from imaging.gaussian import FWHM_PER_SIGMA
from imaging.photometry import exposure_of
from imaging.transients.config import TransientSearchSettings
from imaging.transients.realbogus import RealBogusModel
from imaging.transients.reference_store import ReferenceStore
from imaging.transients.references import ReferenceError as UnusableForReference
from imaging.transients.search import BAD_FRAME_REASON, SearchOutcome, search_transients
from protos import (
    FleetMessage,
    FrameScore,
    FrameSearched,
    QualityLabel,
    TransientSearch,
    stable_message_id,
)
from protos.transients import SKIPPED_REASON_MAX_CHARS
from site_agent.pipeline import FrameWork
from site_agent.search_backlog import PendingSearch, SearchBacklog

log = logging.getLogger(__name__)

T = TypeVar("T")
SEARCH_NICENESS = 10
"""How much nicer than scoring the transient thread runs (Linux: per thread; CFS then gives it
about a tenth of a core that scoring wants)."""


def _lower_priority() -> None:
    """Lower this thread's CPU priority. Threads it starts (the FFT pool) inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SEARCH_NICENESS)
    except (AttributeError, OSError) as exc:  # not Linux: the search runs at normal priority
        log.info("transient search runs at normal priority: %r", exc)


class PixelWorker:
    """One daemon thread, at lower priority, running pixel jobs in order. A daemon, so that
    stopping the agent never waits for a search of many seconds: a search cut off is redone
    from the backlog after the restart."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], object], asyncio.AbstractEventLoop, asyncio.Future[object]] | None
        ] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="transients", daemon=True).start()

    async def run(self, job: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[object] = loop.create_future()
        self._jobs.put((job, loop, done))
        return await done  # type: ignore[return-value]

    def stop(self) -> None:
        """Let the thread end after the job in hand (jobs still queued are dropped)."""
        while not self._jobs.empty():
            self._jobs.get_nowait()
        self._jobs.put(None)

    def _serve(self) -> None:
        _lower_priority()
        while (item := self._jobs.get()) is not None:
            job, loop, done = item
            try:
                outcome: tuple[object, BaseException | None] = (job(), None)
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, done, *outcome)


def _settle(done: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if done.done():  # the awaiting coroutine was cancelled
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


@dataclass
class TransientSearcher:
    """What a site searches its frames with: its references, real/bogus model and limits.

    `worker` is the one thread searches and reference builds run on in the agent, one after
    the other (memory stays that of one of them), at a lower CPU priority than scoring: on a
    small edge computer a search must never slow the next frame's score."""

    site_id: str
    references: ReferenceStore
    model: RealBogusModel
    settings: TransientSearchSettings
    worker: "PixelWorker" = field(default_factory=lambda: PixelWorker())
    read: Callable[[Path], Frame] = read_frame
    """How a frame is read again for its search or its field's reference: the site's own
    calibration applied when it calibrates frames (`calibrated_reader`), so the difference
    image and the reference see the same bias-, dark- and flat-corrected pixels as scoring."""

    async def run_in_worker(self, job: Callable[[], T]) -> T:
        """Run a pixel job on the transient worker thread."""
        return await self.worker.run(job)

    def search(self, frame: Frame, label: QualityLabel) -> SearchOutcome:
        """Search one frame against its field's reference. The frame is read for its search
        alone: its pixels are consumed (they become its sky-subtracted image)."""
        return search_transients(
            frame,
            self.references,
            site_id=self.site_id,
            model=self.model,
            settings=self.settings,
            label=label,
            consume_frame=True,
        )

    @classmethod
    def load(
        cls,
        site_id: str,
        reference_dir: Path,
        model_dir: Path,
        settings: TransientSearchSettings,
        *,
        release_public_key: str | None = None,
        read: Callable[[Path], Frame] = read_frame,
    ) -> Self:
        """The site's reference store, its verified (and, with the fleet's release key,
        signed) real/bogus model, its search limits and how it reads frames."""
        references = ReferenceStore(reference_dir, settings)
        model = RealBogusModel.load(model_dir, release_public_key)
        return cls(site_id, references, model, settings, read=read)


class ReferenceKeeper:
    """Offers good frames to their field's reference in the background, one at a time, off the
    frame path: a frame settled while another is being offered waits in a one-place slot,
    replacing an older one (the newest good frame is the likeliest to be useful). The frame is
    read again from its file, so no pixels wait in memory."""

    def __init__(self, searcher: TransientSearcher) -> None:
        self.searcher = searcher
        self._pending: Path | None = None
        self._wake = asyncio.Event()

    def offer(self, path: Path) -> None:
        """Queue a good frame's file for its field's reference."""
        if self._pending is not None:
            log.debug(
                "reference offer replaced file=%s by=%s",
                printable_name(self._pending),
                printable_name(path),
            )
        self._pending = path
        self._wake.set()

    async def run(self) -> None:
        """Offer queued frames until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            path, self._pending = self._pending, None
            if path is not None:
                await self.searcher.run_in_worker(partial(self._offer_file, path))

    def _offer_file(self, path: Path) -> None:
        try:
            info = self.searcher.references.offer(self.searcher.read(path))
        except (FrameError, UnusableForReference) as exc:  # no WCS, too few stars, ...
            log.info("reference offer skipped file=%s reason=%s", printable_name(path), exc)
            return
        except Exception:  # housekeeping: the frame is already published and settled
            log.exception("reference update failed file=%s", printable_name(path))
            return
        if info is not None:
            log.info(
                "reference updated site=%s field=%s members=%d",
                self.searcher.site_id,
                info.field_id,
                len(info.members),
            )


class SearchLane:
    """Searches settled frames for transients, oldest first, off the scoring path."""

    def __init__(
        self,
        searcher: TransientSearcher,
        backlog: SearchBacklog,
        send: Callable[[FleetMessage], Awaitable[object]],
        on_published: Callable[[FleetMessage], None],
        keeper: ReferenceKeeper | None = None,
    ) -> None:
        self.searcher = searcher
        self.backlog = backlog
        self.keeper = keeper
        self._send = send
        self._on_published = on_published
        self._searching: str | None = None
        """The score message id of the frame being searched now (never pushed out)."""
        self._wake = asyncio.Event()

    def submit(self, pending: PendingSearch) -> None:
        """Queue a scored frame; the oldest beyond the backlog's limit are marked, on disk, to be
        reported as not searched."""
        if self.backlog.add(pending, busy=self._searching):
            log.warning("transient search backlog full limit=%d", self.backlog.limit)
        self._wake.set()

    async def run(self) -> None:
        """Search queued frames until cancelled (a frame cut off is searched after restart)."""
        while True:
            pending = self.backlog.oldest()
            if pending is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            if pending.skipped_reason is not None:
                log.warning("transient search skipped file=%s", pending.score.frame.file_name)
                skipped = SearchOutcome(_skipped(pending.skipped_reason), [])
                await self._publish(pending, skipped, 0.0)
                continue
            self._searching = pending.score.message_id
            try:
                await self._search_and_publish(pending)
            finally:
                self._searching = None
            if self.keeper is not None and pending.score.label is QualityLabel.GOOD:
                self.keeper.offer(pending.path)

    async def _search_and_publish(self, pending: PendingSearch) -> None:
        """One search and its messages. Its outcome (which holds the difference image) is let go
        here, before the next search starts, so two searches' pixels are never held at once."""
        started = time.perf_counter()
        try:
            outcome = await self.searcher.run_in_worker(partial(self._search, pending))
        except Exception as exc:  # a fault in one search must not stop the lane
            log.exception("transient search failed file=%s", printable_name(pending.path))
            reason = f"transient search failed: {type(exc).__name__}: {exc}"
            outcome = SearchOutcome(_skipped(reason[:SKIPPED_REASON_MAX_CHARS]), [])
        await self._publish(pending, outcome, 1000 * (time.perf_counter() - started))

    def _search(self, pending: PendingSearch) -> SearchOutcome:
        score = pending.score
        if score.label is QualityLabel.BAD:
            return SearchOutcome(_skipped(BAD_FRAME_REASON), [])
        try:
            frame = self.searcher.read(pending.path)
        except FrameError as exc:
            reason = f"frame file no longer readable: {exc}"
            return SearchOutcome(_skipped(reason[:SKIPPED_REASON_MAX_CHARS]), [])
        if frame.identity.sha256 != score.frame.sha256:
            return SearchOutcome(_skipped("frame file changed since it was scored"), [])
        return with_limit(self.searcher.search(frame, score.label), frame, score)

    async def _publish(self, pending: PendingSearch, outcome: SearchOutcome, ms: float) -> None:
        score = pending.score
        searched = FrameSearched(
            message_id=stable_message_id(FrameSearched.KIND, score.site_id, score.frame.sha256),
            site_id=score.site_id,
            frame=score.frame,
            score_message_id=score.message_id,
            search=outcome.search,
            search_ms=ms,
        )
        for message in [*outcome.candidates, searched]:
            await self._send(message)
            self._on_published(message)
        self.backlog.done(pending)


def _skipped(reason: str) -> TransientSearch:
    return TransientSearch(attempted=False, skipped_reason=reason)


LIMIT_SIGMAS = 5.0
"""Upper limits are 5-sigma, the usual survey convention, a little above the search's own
detection threshold (`TransientSearchSettings.detection_sigma`): a source that bright would
have been found."""


def with_limit(outcome: SearchOutcome, frame: Frame, score: FrameScore) -> SearchOutcome:
    """The outcome with its difference image's 5-sigma point-source limit (the PSF-fit flux
    error of a Gaussian PSF, sqrt(4 pi) sigma_psf times the pixel noise, through the gain, the
    exposure time and the frame's zero point) and the radius the search surely covered (half
    the frame's shorter side); unchanged without a difference image, zero point or gain."""
    zero_point = score.metrics.zero_point_mag
    exposure = exposure_of(frame)
    if outcome.detections is None or zero_point is None or isinstance(exposure, str):
        return outcome
    difference = outcome.detections.difference
    noise_adu = float(np.nanmedian(np.where(difference.bad, np.nan, difference.noise)))
    psf_sigma_px = difference.psf_fwhm_px / FWHM_PER_SIGMA
    flux_error_e = noise_adu * math.sqrt(4 * math.pi) * psf_sigma_px * exposure.gain_e_per_adu
    if not (math.isfinite(flux_error_e) and flux_error_e > 0):
        return outcome
    limit = zero_point - 2.5 * math.log10(LIMIT_SIGMAS * flux_error_e / exposure.exptime_s)
    scale = frame.pixel_scale_arcsec
    shorter_px = min(frame.identity.width_px, frame.identity.height_px)
    radius = None if scale is None else 0.5 * shorter_px * scale / 3600.0
    values = outcome.search.model_dump() | {
        "limiting_mag": round(limit, 3),
        "searched_radius_deg": radius,
    }
    try:
        return replace(outcome, search=TransientSearch.model_validate(values))
    except ValidationError as exc:  # an implausible limit is left out, never the search
        log.warning("limiting magnitude left out frame=%s: %s", frame.identity.file_name, exc)
        return outcome


@dataclass
class SubmitSearch:
    """After publishing, before settling: a scored frame goes to the search lane (bad ones too,
    to be reported as not searched). A crash before the frame is settled scores it again and
    queues it again (the same ids: stored once), so no scored frame misses its search record."""

    lane: SearchLane

    async def run(self, work: FrameWork) -> None:
        work.frame = None  # the lane reads the file again; no pixels wait in memory
        if isinstance(work.message, FrameScore):
            self.lane.submit(PendingSearch(path=work.path, score=work.message))

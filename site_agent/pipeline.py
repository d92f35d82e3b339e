"""The agent's path for one frame, as a short list of stages: read, classify, (calibration),
score, publish, settle.

Each stage does one thing to the `FrameWork` in hand. A file the reader refuses becomes a
`FrameRejected` (and is quarantined after the message is acknowledged), and so does an image
that is not of the night sky (`ClassifyFrame`: "not a sky frame: ..."); a bias, dark or flat
frame is handed to the calibration stages (`site_agent.calibration_stage`) and never graded; a
sky frame, calibrated with the site's masters when it has them, becomes a `FrameScore`.
Nothing one frame does stops the next: an unexpected error while reading or scoring is logged
with the file and turned into a rejection too. Files are named in messages and log lines by
`printable_name`, so a name with a newline or bytes that are not UTF-8 can neither forge a log
line nor break a message; the real path is what is read and quarantined. Pixel work runs in a
worker thread so the event loop keeps publishing, heartbeating and answering commands meanwhile.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imaging.calibration import CalibratedFrame
from imaging.field_reference import SiteReferences
from imaging.file_names import printable_name
from imaging.fits_reader import Frame, FrameError, read_frame
from imaging.frame_kind import FrameClass, classify_frame
from imaging.photometry import PhotometricCalibration
from imaging.scoring import QualityPredictor, calibrated_inputs, rejection, score_frame
from imaging.thumbnail import thumbnail_png_b64
from protos import (
    FleetMessage,
    FrameRejected,
    FrameScore,
    QualityLabel,
    RejectReason,
)
from protos.frames import REJECTION_MESSAGE_MAX_CHARS
from site_agent.publisher import SitePublisher
from site_agent.quarantine import place_in_quarantine, quarantine_target, remove_original
from site_agent.state import FileFingerprint, ProcessedFrames
from site_agent.telemetry import AgentMetrics

log = logging.getLogger(__name__)


@dataclass
class FrameWork:
    """One file on its way through the stages."""

    path: Path
    fingerprint: FileFingerprint
    complete_at_s: float
    frame: Frame | None = None
    message: FrameScore | FrameRejected | None = None
    related: list[FleetMessage] = field(default_factory=list)
    """Messages published with (before) the frame's own: candidates, follow-up reports."""
    quarantine_to: Path | None = None
    frame_class: FrameClass | None = None
    """What the frame is (`ClassifyFrame`): a sky frame, or a calibration frame not graded."""
    calibrated: CalibratedFrame | None = None
    """The masters applied to a sky frame before scoring, when there were any."""


class Stage(Protocol):
    """One step of the path; it reads and fills in the `FrameWork`."""

    async def run(self, work: FrameWork) -> None: ...


@dataclass
class Rejecter:
    """Turns a refused file into its `FrameRejected` and picks its quarantine place (under
    the file's printable name, which the message can carry)."""

    site_id: str
    quarantine_dir: Path

    def reject(self, work: FrameWork, error: FrameError) -> None:
        name = printable_name(work.path.name)
        work.quarantine_to = quarantine_target(self.quarantine_dir, name)
        work.message = rejection(error, site_id=self.site_id).model_copy(
            update={"quarantine_path": str(work.quarantine_to)}
        )


@dataclass
class ReadFrame:
    """Read and validate the FITS file; refused files become rejections, and so does a file
    the reader fails on unexpectedly (logged with the file)."""

    rejecter: Rejecter

    async def run(self, work: FrameWork) -> None:
        try:
            work.frame = await asyncio.to_thread(read_frame, work.path)
        except FrameError as error:
            self.rejecter.reject(work, error)
        except Exception as exc:  # one file must never stop the path
            log.exception(
                "reading failed site=%s file=%s", self.rejecter.site_id, printable_name(work.path)
            )
            unreadable = FrameError(work.path, RejectReason.UNREADABLE, f"reading failed: {exc!r}")
            self.rejecter.reject(work, unreadable)


@dataclass
class ClassifyFrame:
    """Say what a readable frame is: an image that is not of the night sky (a solar WCS, an
    all-sky image, a difference image) is refused with the reason; a calibration frame is
    marked, for the calibration stages to collect; a sky frame goes on to be scored. A frame
    classification fails on is scored as before (logged with the file)."""

    rejecter: Rejecter

    async def run(self, work: FrameWork) -> None:
        frame = work.frame
        if frame is None:
            return
        site_id, name = self.rejecter.site_id, printable_name(work.path.name)
        try:
            work.frame_class = await asyncio.to_thread(classify_frame, frame)
        except Exception:  # an unforeseen header or pixel layout: grade it as a sky frame
            log.exception("classifying failed, graded as sky site=%s file=%s", site_id, name)
            return
        if work.frame_class.not_sky is not None:
            work.frame = None
            error = FrameError(work.path, RejectReason.NO_IMAGE_DATA, work.frame_class.describe())
            self.rejecter.reject(work, error)
        elif not work.frame_class.is_calibration and frame.identity.exptime_s == 0.0:
            log.warning(
                "light frame with EXPTIME = 0 site=%s file=%s: scored without photometry or "
                "dark correction (%s)",
                site_id,
                name,
                work.frame_class.evidence,
            )


@dataclass
class ScoreFrame:
    """Preprocess, run the quality model, measure the image and (calibrated) its photometry."""

    site_id: str
    predictor: QualityPredictor
    rejecter: Rejecter
    pixel_scale_arcsec: float | None = None
    saturation_adu: float | None = None
    photometry: PhotometricCalibration | None = None
    references: SiteReferences | None = None

    async def run(self, work: FrameWork) -> None:
        if work.frame is None or work.message is not None:
            return
        if work.frame_class is not None and work.frame_class.is_calibration:
            return  # collected by the calibration stages, never graded as sky
        saturation, photometry = calibrated_inputs(
            work.calibrated, self.saturation_adu, self.photometry
        )
        try:
            score = await asyncio.to_thread(
                score_frame,
                work.frame,
                self.predictor,
                site_id=self.site_id,
                pixel_scale_arcsec=self.pixel_scale_arcsec,
                saturation_adu=saturation,
                photometry=photometry,
                references=self.references,
            )
        except Exception as exc:  # one frame's failure must never stop the agent
            log.exception("scoring failed site=%s file=%s", self.site_id, printable_name(work.path))
            error = FrameError(work.path, RejectReason.UNREADABLE, f"scoring failed: {exc!r}")
            self.rejecter.reject(work, error)
            return
        thumbnail = await asyncio.to_thread(thumbnail_png_b64, work.frame.data)
        work.message = score.model_copy(update={"thumbnail_png_b64": thumbnail})


@dataclass
class PublishMessage:
    """Put the frame's related messages, then its own, into JetStream (waits for each
    acknowledgement): once the score is stored, everything that came of the frame is."""

    publisher: SitePublisher

    async def run(self, work: FrameWork) -> None:
        for related in work.related:
            await self.publisher.send(related)
        if work.message is not None:
            await self.publisher.send(work.message)


@dataclass
class PlaceInQuarantine:
    """Before publishing: put a rejected file in the quarantine folder (the original stays in
    the watched folder until the message is acknowledged). If it cannot be put there, the
    message says so and names no quarantine path."""

    async def run(self, work: FrameWork) -> None:
        message = work.message
        if not isinstance(message, FrameRejected) or work.quarantine_to is None:
            return
        why_not = await asyncio.to_thread(
            place_in_quarantine, work.path, work.quarantine_to, message.reason, message.message
        )
        if why_not is not None:
            work.quarantine_to = None
            text = f"{message.message}; left in place, not quarantined: {why_not}"
            work.message = message.model_copy(
                update={"quarantine_path": None, "message": text[:REJECTION_MESSAGE_MAX_CHARS]}
            )


@dataclass
class SettleFile:
    """After the acknowledgement: take a quarantined file out of the watched folder, record the
    file as done, count it, and raise the alarm for bad frames."""

    state: ProcessedFrames
    metrics: AgentMetrics
    on_settled: Callable[[FleetMessage], None]

    async def run(self, work: FrameWork) -> None:
        message = work.message
        if isinstance(message, FrameRejected):
            if work.quarantine_to is not None:
                await asyncio.to_thread(remove_original, work.path)
            self.state.settle(
                work.fingerprint,
                sha256=message.sha256,
                outcome="rejected",
                message_id=message.message_id,
            )
            self.metrics.rejected(message.reason.value)
            log.warning(
                "frame rejected site=%s file=%s reason=%s message=%s quarantine=%s",
                message.site_id,
                printable_name(work.path.name),
                message.reason.value,
                message.message,
                message.quarantine_path,
            )
        elif isinstance(message, FrameScore):
            self.state.settle(
                work.fingerprint,
                sha256=message.frame.sha256,
                outcome="scored",
                message_id=message.message_id,
            )
            self.metrics.scored(message.label.value, time.monotonic() - work.complete_at_s)
            _announce(message)
        else:
            return
        self.on_settled(message)
        for related in work.related:
            self.on_settled(related)


def _announce(score: FrameScore) -> None:
    reasons = ",".join(r.reason for r in score.reasons) or "-"
    level = {QualityLabel.BAD: logging.WARNING}.get(score.label, logging.INFO)
    event = {QualityLabel.BAD: "ALERT bad frame", QualityLabel.MEDIUM: "frame flagged medium"}
    log.log(
        level,
        "%s site=%s file=%s label=%s confidence=%.2f reasons=%s fwhm_arcsec=%s sources=%d",
        event.get(score.label, "frame scored"),
        score.site_id,
        printable_name(score.frame.file_name),
        score.label.value,
        score.confidence,
        reasons,
        score.metrics.fwhm_arcsec,
        score.metrics.source_count,
    )


class FramePipeline:
    """The stages in order; `process` takes one file all the way to settled."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    async def process(self, work: FrameWork) -> FrameWork:
        for stage in self.stages:
            await stage.run(work)
        return work


def site_pipeline(
    *,
    site_id: str,
    predictor: QualityPredictor,
    publisher: SitePublisher,
    state: ProcessedFrames,
    metrics: AgentMetrics,
    quarantine_dir: Path,
    on_settled: Callable[[FleetMessage], None],
    pixel_scale_arcsec: float | None = None,
    saturation_adu: float | None = None,
    photometry: PhotometricCalibration | None = None,
    references: SiteReferences | None = None,
    before_scoring: list[Stage] | None = None,
    before_publishing: list[Stage] | None = None,
    after_publishing: list[Stage] | None = None,
    after_settling: list[Stage] | None = None,
) -> FramePipeline:
    """The site agent's stages: read → classify → (before scoring: the calibration stages) →
    score → (before publishing) → publish → (after publishing) → settle → (after settling). A
    stage whose work must survive a crash goes before settling: a frame not yet settled is
    processed again after a restart."""
    rejecter = Rejecter(site_id, quarantine_dir)
    return FramePipeline(
        [
            ReadFrame(rejecter),
            ClassifyFrame(rejecter),
            *(before_scoring or []),
            ScoreFrame(
                site_id,
                predictor,
                rejecter,
                pixel_scale_arcsec,
                saturation_adu,
                photometry,
                references,
            ),
            *(before_publishing or []),
            PlaceInQuarantine(),
            PublishMessage(publisher),
            *(after_publishing or []),
            SettleFile(state, metrics, on_settled),
            *(after_settling or []),
        ]
    )

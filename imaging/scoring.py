"""Scoring frames: the quality verdict on one frame, and on a batch of files that never stops.

`score_frame` runs the site's quality path on a frame already read: the one preprocessing, the
model, the image metrics with the stars' PSF, and the photometry (with the site's calibration),
all graded once by `imaging.verdict.judge` into the label, its probabilities and the physical
reasons, and returns the `FrameScore` message.
`score_files` reads and scores files one after another and turns every unreadable or invalid
file into a `FrameRejected` message instead of an exception, so one bad file never stops a
batch; an image that is not of the night sky is refused the same way ("not a sky frame: ...",
`imaging.frame_kind`), a bias, dark or flat frame is named and not graded, and a sky frame is
calibrated first with a site's masters when given them (`imaging.calibration_store`).
"""

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from imaging.calibration import CalibratedFrame
from imaging.calibration_store import CalibrationStore
from imaging.criteria import frame_criteria
from imaging.field_reference import SiteReferences
from imaging.file_names import printable_name
from imaging.fits_header import DEFAULT_SATURATION_ADU
from imaging.fits_reader import Frame, FrameError, read_frame
from imaging.frame_kind import FrameClass, classify_frame
from imaging.metrics import measure_frame
from imaging.photometry import (
    PhotometricCalibration,
    PhotometryResult,
    exposure_of,
    measure_photometry,
)
from imaging.preprocess import preprocess_frame
from imaging.quality_thresholds import QualityThresholds
from imaging.verdict import CLASS_ORDER, judge
from protos import (
    ClassProbabilities,
    FrameRejected,
    FrameScore,
    ImageMetrics,
    ModelRef,
    RejectReason,
    stable_message_id,
)
from protos.frames import (
    FILE_NAME_MAX_CHARS,
    REJECTION_MESSAGE_MAX_CHARS,
    TRANSPARENCY_NOTE_MAX_CHARS,
    TransparencyReference,
)

log = logging.getLogger(__name__)


class QualityPredictor(Protocol):
    """A model that scores preprocessed frames and says which model it is."""

    @property
    def ref(self) -> ModelRef: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class FileResult(NamedTuple):
    """What became of one file: its score, why it was rejected, or which calibration frame it
    is (not graded); and what its calibration could not do."""

    path: Path
    outcome: FrameScore | FrameRejected | FrameClass
    notes: tuple[str, ...] = ()


def score_frame(
    frame: Frame,
    model: QualityPredictor,
    *,
    site_id: str,
    pixel_scale_arcsec: float | None = None,
    saturation_adu: float | None = None,
    photometry: PhotometricCalibration | None = None,
    references: SiteReferences | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> FrameScore:
    """The quality verdict on one frame, with its metrics and reasons.

    The pixel scale defaults to the frame's WCS and the saturation level to its header
    (SATURATE, or the largest value its integer BITPIX holds), then to 65535 ADU.
    `processing_ms` covers preprocessing, the model, the metrics and the photometry, not reading
    the file.
    """
    started = time.perf_counter()
    probabilities = model.predict(preprocess_frame(frame.data)[np.newaxis])[0]
    scale = pixel_scale_arcsec or frame.pixel_scale_arcsec
    saturation = saturation_adu or frame.saturation_adu or DEFAULT_SATURATION_ADU
    measured = measure_frame(frame.data, pixel_scale_arcsec=scale, saturation_adu=saturation)
    metrics = measured.metrics
    if photometry is not None or references is not None:
        metrics = with_photometry(metrics, frame, photometry, references, scale, saturation)
    verdict = judge(frame_criteria(metrics, measured.psf, scale), probabilities, thresholds)
    class_probabilities = ClassProbabilities(
        **{name.value: float(p) for name, p in zip(CLASS_ORDER, verdict.probabilities, strict=True)}
    )
    return FrameScore(
        message_id=stable_message_id(FrameScore.KIND, site_id, frame.identity.sha256),
        site_id=site_id,
        frame=frame.identity,
        label=verdict.label,
        confidence=class_probabilities.of(verdict.label),
        probabilities=class_probabilities,
        model=model.ref,
        metrics=metrics,
        reasons=list(verdict.reasons),
        processing_ms=(time.perf_counter() - started) * 1000.0,
    )


def with_photometry(
    metrics: ImageMetrics,
    frame: Frame,
    calibration: PhotometricCalibration | None,
    references: SiteReferences | None,
    pixel_scale_arcsec: float | None,
    saturation_adu: float,
) -> ImageMetrics:
    """The metrics with the frame's transparency (against the field's catalogue when the site
    has one, else against the site's own reference of the field), zero point and sky
    brightness added; where the transparency cannot be measured, the note says why."""
    measured = (
        measure_photometry(
            frame,
            background_adu=metrics.background_adu,
            pixel_scale_arcsec=pixel_scale_arcsec,
            saturation_adu=saturation_adu,
            calibration=calibration,
        )
        if calibration is not None
        else PhotometryResult(note="no photometric calibration")
    )
    source = TransparencyReference.CATALOGUE if measured.transparency is not None else None
    transparency, error, note = measured.transparency, measured.transparency_error, measured.note
    if transparency is None and references is not None:
        relative = _relative_transparency(frame, references, saturation_adu)
        if isinstance(relative, str):
            note = relative if calibration is None else f"{note}; {relative}"
        else:
            source, transparency, error = TransparencyReference.SITE_REFERENCE, *relative
    if transparency is None:
        log.info("transparency not measured file=%s: %s", frame.path.name, note)
    elif transparency < 0.0:
        # noise on a sky with next to no starlight: the contract's transparency is >= 0
        transparency = 0.0
    # validated, not `model_copy`: a value outside the contract fails here, at the site,
    # rather than being dead-lettered at the centre
    return ImageMetrics.model_validate(
        {
            **metrics.model_dump(),
            "transparency": transparency,
            "transparency_error": error if transparency is not None else None,
            "transparency_reference": source,
            "transparency_note": None
            if transparency is not None
            else (note or "unknown")[:TRANSPARENCY_NOTE_MAX_CHARS],
            "zero_point_mag": measured.zero_point_mag,
            "sky_brightness_mag_arcsec2": measured.sky_brightness_mag_arcsec2,
        }
    )


def _relative_transparency(
    frame: Frame, references: SiteReferences, saturation_adu: float
) -> tuple[float, float] | str:
    """(transparency, error) against the site's reference of the frame's field, or why not."""
    exposure = exposure_of(frame)
    if isinstance(exposure, str):
        return exposure
    relative = references.transparency(frame, exposure, saturation_adu)
    if isinstance(relative, str):
        return relative
    return relative.starlight.transparency, relative.starlight.error


def score_files(
    paths: Iterable[Path],
    model: QualityPredictor,
    *,
    site_id: str,
    pixel_scale_arcsec: float | None = None,
    saturation_adu: float | None = None,
    photometry: PhotometricCalibration | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
    calibration: CalibrationStore | None = None,
    references: SiteReferences | None = None,
) -> Iterator[FileResult]:
    """Read and score each file in turn; a file that cannot be read, or is not of the night
    sky, yields `FrameRejected`, a calibration frame its `FrameClass`."""
    for path in paths:
        try:
            frame = read_frame(Path(path))
        except FrameError as error:
            yield FileResult(Path(path), rejection(error, site_id=site_id))
            continue
        kind = classify_frame(frame)
        if kind.not_sky is not None:
            refused = FrameError(frame.path, RejectReason.NO_IMAGE_DATA, kind.describe())
            yield FileResult(Path(path), rejection(refused, site_id=site_id))
            continue
        if kind.is_calibration:
            yield FileResult(Path(path), kind)
            continue
        calibrated = None
        if calibration is not None:
            calibrated = calibration.calibrate(frame, saturation_adu=saturation_adu)
            frame = calibrated.frame
        saturation, photometry_used = calibrated_inputs(calibrated, saturation_adu, photometry)
        score = score_frame(
            frame,
            model,
            site_id=site_id,
            pixel_scale_arcsec=pixel_scale_arcsec,
            saturation_adu=saturation,
            photometry=photometry_used,
            references=references,
            thresholds=thresholds,
        )
        yield FileResult(Path(path), score, calibrated.notes if calibrated else ())


def calibrated_inputs(
    calibrated: CalibratedFrame | None,
    saturation_adu: float | None,
    photometry: PhotometricCalibration | None,
) -> tuple[float | None, PhotometricCalibration | None]:
    """The saturation level and photometric calibration to score a frame with once its bias is
    removed: the calibrated frame's own saturation level (a raw level given for the camera no
    longer applies), and a photometric calibration with no bias left to subtract."""
    if calibrated is None or not calibrated.bias_removed:
        return saturation_adu, photometry
    if photometry is not None:
        photometry = photometry.model_copy(update={"bias_adu": 0.0})
    return None, photometry


def rejection(error: FrameError, *, site_id: str) -> FrameRejected:
    """The `FrameRejected` message for a file `read_frame` refused, naming it printably."""
    file_name = printable_name(error.path.name or error.path, max_chars=FILE_NAME_MAX_CHARS)
    path = printable_name(error.path)
    return FrameRejected(
        message_id=stable_message_id(FrameRejected.KIND, site_id, path, error.reason),
        site_id=site_id,
        file_name=file_name,
        reason=error.reason,
        message=str(error)[:REJECTION_MESSAGE_MAX_CHARS],
    )

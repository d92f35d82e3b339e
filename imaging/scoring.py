"""Scoring frames: the quality verdict on one frame, and on a batch of files that never stops.

`score_frame` runs the site's quality path on a frame already read: the one preprocessing, the
model, the image metrics and the photometry (with the site's calibration) whose grades floor the
model's verdict, and the physical reasons, and returns the `FrameScore` message.
`score_files` reads and scores files one after another and turns every unreadable or invalid
file into a `FrameRejected` message instead of an exception, so one bad file never stops a
batch.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from imaging.file_names import printable_name
from imaging.fits_reader import Frame, FrameError, read_frame
from imaging.metrics import measure_image_metrics
from imaging.photometry import PhotometricCalibration, measure_photometry
from imaging.preprocess import preprocess_frame
from imaging.quality_reasons import explain_quality
from imaging.quality_thresholds import QualityThresholds
from imaging.verdict import CLASS_ORDER, floored_probabilities, measured_floor
from protos import (
    ClassProbabilities,
    FrameRejected,
    FrameScore,
    ImageMetrics,
    ModelRef,
    stable_message_id,
)
from protos.frames import FILE_NAME_MAX_CHARS, REJECTION_MESSAGE_MAX_CHARS

log = logging.getLogger(__name__)

# Used when neither the caller nor the header (SATURATE, integer BITPIX) gives a level.
DEFAULT_SATURATION_ADU = 65535.0


class QualityPredictor(Protocol):
    """A model that scores preprocessed frames and says which model it is."""

    @property
    def ref(self) -> ModelRef: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class FileResult(NamedTuple):
    """What became of one file: its score, or why it was rejected."""

    path: Path
    outcome: FrameScore | FrameRejected


def score_frame(
    frame: Frame,
    model: QualityPredictor,
    *,
    site_id: str,
    pixel_scale_arcsec: float | None = None,
    saturation_adu: float | None = None,
    photometry: PhotometricCalibration | None = None,
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
    metrics = measure_image_metrics(frame.data, pixel_scale_arcsec=scale, saturation_adu=saturation)
    if photometry is not None:
        metrics = with_photometry(metrics, frame, photometry, scale, saturation)
    floor = measured_floor(
        metrics.transparency,
        metrics.transparency_error,
        metrics.sky_brightness_mag_arcsec2,
        metrics.satellite_trails,
        thresholds,
    )
    probabilities = floored_probabilities(probabilities, floor)
    label = CLASS_ORDER[int(np.argmax(probabilities))]
    class_probabilities = ClassProbabilities(
        **{name.value: float(p) for name, p in zip(CLASS_ORDER, probabilities, strict=True)}
    )
    return FrameScore(
        message_id=stable_message_id("frame-score", site_id, frame.identity.sha256),
        site_id=site_id,
        frame=frame.identity,
        label=label,
        confidence=class_probabilities.of(label),
        probabilities=class_probabilities,
        model=model.ref,
        metrics=metrics,
        reasons=explain_quality(metrics, thresholds=thresholds),
        processing_ms=(time.perf_counter() - started) * 1000.0,
    )


def with_photometry(
    metrics: ImageMetrics,
    frame: Frame,
    calibration: PhotometricCalibration,
    pixel_scale_arcsec: float | None,
    saturation_adu: float,
) -> ImageMetrics:
    """The metrics with the frame's transparency, zero point and sky brightness added."""
    measured = measure_photometry(
        frame,
        background_adu=metrics.background_adu,
        pixel_scale_arcsec=pixel_scale_arcsec,
        saturation_adu=saturation_adu,
        calibration=calibration,
    )
    if measured.note:
        log.info("photometry incomplete file=%s: %s", frame.path.name, measured.note)
    return metrics.model_copy(
        update={
            "transparency": measured.transparency,
            "transparency_error": measured.transparency_error,
            "zero_point_mag": measured.zero_point_mag,
            "sky_brightness_mag_arcsec2": measured.sky_brightness_mag_arcsec2,
        }
    )


def score_files(
    paths: Iterable[Path],
    model: QualityPredictor,
    *,
    site_id: str,
    pixel_scale_arcsec: float | None = None,
    saturation_adu: float | None = None,
    photometry: PhotometricCalibration | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> Iterator[FileResult]:
    """Read and score each file in turn; a file that cannot be read yields `FrameRejected`."""
    for path in paths:
        try:
            frame = read_frame(Path(path))
        except FrameError as error:
            yield FileResult(Path(path), rejection(error, site_id=site_id))
            continue
        score = score_frame(
            frame,
            model,
            site_id=site_id,
            pixel_scale_arcsec=pixel_scale_arcsec,
            saturation_adu=saturation_adu,
            photometry=photometry,
            thresholds=thresholds,
        )
        yield FileResult(Path(path), score)


def rejection(error: FrameError, *, site_id: str) -> FrameRejected:
    """The `FrameRejected` message for a file `read_frame` refused, naming it printably."""
    file_name = printable_name(error.path.name or error.path, max_chars=FILE_NAME_MAX_CHARS)
    path = printable_name(error.path)
    return FrameRejected(
        message_id=stable_message_id("frame-rejected", site_id, path, error.reason),
        site_id=site_id,
        file_name=file_name,
        reason=error.reason,
        message=str(error)[:REJECTION_MESSAGE_MAX_CHARS],
    )

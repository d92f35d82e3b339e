"""A frame's quality criteria in physical units, each with its error, ready to be graded.

`frame_criteria` turns the wire's `ImageMetrics` and the PSF measured in pixels
(`imaging.psf`) into the list `imaging.verdict.judge` grades: seeing, trailing and focus in
arcsec (with the pixel scale), transparency, sky brightness, saturated fraction and satellite
trails. A criterion that could not be measured stays in the list with why (no pixel scale, too
few clean stars, stars too trailed for the focus fit, no calibration, a frame too small for
the trail count), so the verdict can say what the model alone judged.

The errors are the measurements' own, widened by what they are known to miss:
`TRANSPARENCY_SYSTEMATIC` (the aperture correction and vignetting leave -2 to -3.5 % biases,
`imaging.photometry`), `SKY_SYSTEMATIC_MAG` (the background's level against a calibration
that drifts by a few hundredths of a magnitude) and `TRAIL_COUNT_ERROR` (a count that was off
by one on 1-3 % of the simulated frames, `imaging.trails`).
"""

from dataclasses import dataclass, field

import numpy as np

from imaging.psf import PsfMeasurement
from imaging.quality_thresholds import Limit
from protos import ImageMetrics, QualityLabel
from protos.frames import Reason

TRANSPARENCY_SYSTEMATIC = 0.03
SKY_SYSTEMATIC_MAG = 0.05
TRAIL_COUNT_ERROR = 0.25
"""Half a count at 2 sigma: a count one off is rare but not impossible."""
NO_PSF = "too few clean stars"
NO_SCALE = "no pixel scale"


@dataclass(frozen=True)
class Measurement:
    """A measured value and its 1-sigma error (0: exact, as a count of pixels)."""

    value: float
    error: float = 0.0


@dataclass(frozen=True)
class Criterion:
    """One criterion to grade: its name in `QualityThresholds`, the reason it gives, the words
    for it, and its measurement (None, with why, when it could not be measured)."""

    name: str
    reason: Reason
    quantity: str
    measurement: Measurement | None
    missing: str = ""
    count: bool = False
    """Whole numbers (satellite trails): graded on the half-way points between them."""


@dataclass(frozen=True)
class CriterionGrade:
    """A criterion with its limit, its grade (None: not measured) and its class
    probabilities (good, medium, bad)."""

    criterion: Criterion
    limit: Limit
    grade: QualityLabel | None
    probabilities: np.ndarray = field(repr=False)


def frame_criteria(
    metrics: ImageMetrics,
    psf: PsfMeasurement | None,
    pixel_scale_arcsec: float | None,
) -> list[Criterion]:
    """Every criterion of the frame, measured or not, in the order reasons are given."""
    return [
        *_psf_criteria(psf, pixel_scale_arcsec),
        Criterion(
            "transparency",
            "transparency",
            "transparency",
            None
            if metrics.transparency is None
            else Measurement(
                metrics.transparency,
                _quadrature(metrics.transparency_error or 0.0, TRANSPARENCY_SYSTEMATIC),
            ),
            missing="no photometric calibration or catalogue for this frame",
        ),
        Criterion(
            "saturated_fraction",
            "saturation",
            "saturated fraction",
            Measurement(metrics.saturated_fraction),
        ),
        Criterion(
            "satellite_trails",
            "artefacts",
            "satellite trails",
            None
            if metrics.satellite_trails is None
            else Measurement(metrics.satellite_trails, TRAIL_COUNT_ERROR),
            missing="frame too small to count trails on",
            count=True,
        ),
        Criterion(
            "sky_brightness",
            "background",
            "sky brightness",
            None
            if metrics.sky_brightness_mag_arcsec2 is None
            else Measurement(metrics.sky_brightness_mag_arcsec2, SKY_SYSTEMATIC_MAG),
            missing="no photometric calibration for this frame",
        ),
    ]


def _psf_criteria(psf: PsfMeasurement | None, scale: float | None) -> list[Criterion]:
    """Seeing, trailing and focus in arcsec, or why they are unknown."""
    missing = NO_SCALE if not scale else NO_PSF if psf is None else ""
    if psf is None or not scale:
        return [
            Criterion("seeing", "seeing", "seeing", None, missing),
            Criterion("trailing", "trailing", "star trailing", None, missing),
            Criterion("focus", "focus", "defocus blur", None, missing),
        ]
    focus = (
        None
        if psf.defocus_px is None
        else Measurement(psf.defocus_px * scale, (psf.defocus_error_px or 0.0) * scale)
    )
    return [
        Criterion(
            "seeing",
            "seeing",
            "seeing",
            Measurement(psf.fwhm_px * scale, psf.fwhm_error_px * scale),
        ),
        Criterion(
            "trailing",
            "trailing",
            "star trailing",
            Measurement(psf.trailing_px * scale, psf.trailing_error_px * scale),
        ),
        Criterion(
            "focus",
            "focus",
            "defocus blur",
            focus,
            missing="stars too trailed or not seeing-shaped for the focus fit",
        ),
    ]


def _quadrature(*errors: float) -> float:
    return float(sum(error * error for error in errors) ** 0.5)

"""Physical reasons behind a quality verdict, judged against the fleet's threshold table.

`explain_quality` grades each measured criterion with `QualityThresholds` (the one table, in
`imaging.quality_thresholds`) and returns one `QualityReason` for every criterion that is not
good: seeing (FWHM), trailing (ellipticity), saturation, satellite trails and, when the site's
photometry measured them, transparency and sky brightness. A medium value is reported against
the good limit, a bad one against the bad limit, each with a sentence an observer can act on.
"""

from dataclasses import dataclass

from imaging.quality_thresholds import Limit, QualityThresholds, favourable_bound
from protos import ImageMetrics, QualityLabel, QualityReason
from protos.frames import Reason

# Units left out of the sentences: "ellipticity 0.4 exceeds the 0.25 limit" reads better.
DIMENSIONLESS_UNITS = frozenset({"1-b/a", "ratio", "fraction", "count"})


@dataclass(frozen=True)
class _Criterion:
    """One measured quantity, the limit that judges it and the words that describe it."""

    reason: Reason
    quantity: str
    value: float | None
    limit: Limit
    error: float | None = None
    """1-sigma error of the value, given to it: judged at its most favourable bound."""


def explain_quality(
    metrics: ImageMetrics,
    *,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[QualityReason]:
    """One reason per criterion whose measured value is worse than good, in a fixed order."""
    criteria = [
        _Criterion("seeing", "seeing", metrics.fwhm_arcsec, thresholds.seeing),
        _Criterion("trailing", "star ellipticity", metrics.ellipticity, thresholds.ellipticity),
        _Criterion(
            "transparency",
            "transparency",
            metrics.transparency,
            thresholds.transparency,
            metrics.transparency_error,
        ),
        _Criterion(
            "saturation",
            "saturated fraction",
            metrics.saturated_fraction,
            thresholds.saturated_fraction,
        ),
        _Criterion(
            "artefacts",
            "satellite trails",
            metrics.satellite_trails,
            thresholds.satellite_trails,
        ),
        _Criterion(
            "background",
            "sky brightness",
            metrics.sky_brightness_mag_arcsec2,
            thresholds.sky_brightness,
        ),
    ]
    return [reason for criterion in criteria if (reason := _reason(criterion)) is not None]


def _reason(criterion: _Criterion) -> QualityReason | None:
    if criterion.value is None:
        return None
    grade = criterion.limit.grade(
        favourable_bound(criterion.value, criterion.error, criterion.limit)
    )
    if grade == QualityLabel.GOOD:
        return None
    limit = criterion.limit
    threshold, frames = (
        (limit.good, "good") if grade == QualityLabel.MEDIUM else (limit.bad, "medium")
    )
    if limit.direction == "lower_is_better":
        verb = "exceeds"
    elif criterion.reason == "background":
        verb = "is brighter than"
    else:
        verb = "is below"
    unit = "" if limit.unit in DIMENSIONLESS_UNITS else f" {limit.unit}"
    error = f" ± {criterion.error:.2g}" if criterion.error is not None else ""
    return QualityReason(
        reason=criterion.reason,
        value=criterion.value,
        threshold=threshold,
        unit=limit.unit,
        message=(
            f"{criterion.quantity} {criterion.value:.3g}{error}{unit} {verb} "
            f"the {threshold:g}{unit} limit for {frames} frames"
        ),
    )

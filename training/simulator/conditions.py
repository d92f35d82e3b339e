"""Observing conditions: what the sky and telescope did during one exposure, and its label.

A frame's label is the worst grade of its true conditions, graded by the fleet's one table
(`imaging.quality_thresholds`); the simulator adds the saturated-pixel fraction it measures
on the rendered frame (see `frame.py`). `sample_conditions` draws conditions for a wanted label
with a margin of 20 % of each criterion's medium span away from every threshold, so no frame
sits on a boundary. Medium and bad frames degrade one criterion (sometimes two), so the classes
are physically different failure modes, not a blend of everything at once.

With the default thresholds the sampled ranges are:

| criterion (field)                     | good        | medium      | bad         |
| ------------------------------------- | ----------- | ----------- | ----------- |
| seeing (`seeing_fwhm_arcsec`)         | 0.8 - 2.2   | 2.8 - 3.7   | 4.3 - 7.0   |
| transparency (`transparency`)         | 0.88 - 1.0  | 0.48 - 0.72 | 0.05 - 0.32 |
| trailing (`trailing_arcsec`)          | 0.0 - 0.8   | 2.2 - 4.3   | 5.7 - 20    |
| focus (`defocus_arcsec`)              | 0.0 - 0.4   | 1.6 - 3.4   | 4.6 - 12    |
| sky brightness (`sky_mag_arcsec2`)    | 19.9 - 21.8 | 17.9 - 19.1 | 16.3 - 17.1 |
| satellite trails (`satellite_trails`) | 0           | 1           | 2 - 4       |

A medium frame has one criterion (30 %: two) in its medium range and the rest good; a bad
frame has one criterion (25 %: two) in its bad range, sometimes (30 %) one more at medium.
Nuisance parameters that no threshold grades are drawn the same way for every label: Moffat
beta 3-5 (PSF wings), trail angle, cloud patchiness (growing with cloud cover) and the sky
gradient (growing with moonlight).
"""

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from imaging.quality_thresholds import Limit, QualityThresholds, worst
from protos import QualityLabel

DARK_SKY_MAG_ARCSEC2 = 21.5
"""Zenith night-sky brightness of a dark site in r; brighter sky is moonlight or twilight."""

MARGIN_FRACTION = 0.2
"""Distance kept from every threshold, as a fraction of the criterion's medium span."""


class ObservingConditions(BaseModel):
    """The true physical conditions of one exposure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeing_fwhm_arcsec: float = Field(gt=0.0, description="Atmospheric PSF FWHM.")
    moffat_beta: float = Field(default=3.0, gt=1.0, description="Moffat wing shape of the PSF.")
    transparency: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Mean fraction of starlight through clouds."
    )
    cloud_patchiness: float = Field(
        default=0.0, ge=0.0, description="RMS relative variation of transmission over the frame."
    )
    trailing_arcsec: float = Field(default=0.0, ge=0.0, description="Tracking-error trail length.")
    trail_angle_deg: float = Field(default=0.0, description="Trail direction, from +x towards +y.")
    defocus_arcsec: float = Field(default=0.0, ge=0.0, description="Out-of-focus donut diameter.")
    sky_mag_arcsec2: float = Field(
        default=21.0, description="Sky surface brightness at the frame centre."
    )
    sky_gradient_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Peak-to-peak sky change across the frame."
    )
    sky_gradient_angle_deg: float = Field(default=0.0, description="Direction the sky brightens.")
    satellite_trails: int = Field(default=0, ge=0, description="Satellite trails crossing.")


@dataclass(frozen=True)
class _Criterion:
    """One graded criterion: its field, and the physical range the simulator covers."""

    field: str
    best: float
    worst: float
    is_count: bool = False


_CRITERIA: dict[str, _Criterion] = {
    "seeing": _Criterion("seeing_fwhm_arcsec", best=0.8, worst=7.0),
    "transparency": _Criterion("transparency", best=1.0, worst=0.05),
    "trailing": _Criterion("trailing_arcsec", best=0.0, worst=20.0),
    "focus": _Criterion("defocus_arcsec", best=0.0, worst=12.0),
    "sky_brightness": _Criterion("sky_mag_arcsec2", best=21.8, worst=16.3),
    "satellite_trails": _Criterion("satellite_trails", best=0, worst=4, is_count=True),
}
"""Criteria graded from the conditions; `saturated_fraction` is graded on the rendered frame."""


def criterion_limit(thresholds: QualityThresholds, name: str) -> Limit:
    """The threshold `Limit` of one criterion by its name in `QualityThresholds`."""
    limit: Limit = getattr(thresholds, name)
    return limit


def criterion_value(conditions: ObservingConditions, name: str) -> float:
    """The value of a graded criterion (by its name in `QualityThresholds`) in the conditions."""
    return float(getattr(conditions, _CRITERIA[name].field))


def label_conditions(
    conditions: ObservingConditions, thresholds: QualityThresholds | None = None
) -> tuple[QualityLabel, dict[str, QualityLabel]]:
    """The label of the conditions (their worst grade) and the grade of each criterion."""
    thresholds = thresholds or QualityThresholds()
    grades = {
        name: criterion_limit(thresholds, name).grade(criterion_value(conditions, name))
        for name in _CRITERIA
    }
    return worst(list(grades.values())), grades


def grade_range(
    name: str, grade: QualityLabel, thresholds: QualityThresholds | None = None
) -> tuple[float, float]:
    """The (low, high) range `sample_conditions` draws criterion `name` from for `grade`."""
    criterion = _CRITERIA[name]
    limit = criterion_limit(thresholds or QualityThresholds(), name)
    sign = 1.0 if limit.direction == "lower_is_better" else -1.0
    if criterion.is_count:
        edges = [criterion.best, limit.good, limit.good + sign, limit.bad, limit.bad + sign]
        edges.append(criterion.worst)
    else:
        margin = sign * MARGIN_FRACTION * abs(limit.bad - limit.good)
        edges = [criterion.best, limit.good - margin, limit.good + margin, limit.bad - margin]
        edges += [limit.bad + margin, criterion.worst]
    index = [QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD].index(grade)
    start, end = edges[2 * index], edges[2 * index + 1]
    if sign * (end - start) < 0:
        raise ValueError(f"thresholds leave no {grade.value} range for {name}")
    return min(start, end), max(start, end)


def _draw_criterion(
    rng: np.random.Generator, name: str, grade: QualityLabel, thresholds: QualityThresholds
) -> float | int:
    low, high = grade_range(name, grade, thresholds)
    if _CRITERIA[name].is_count:
        return int(rng.integers(int(low), int(high) + 1))
    return float(rng.uniform(low, high))


def _degraded_grades(rng: np.random.Generator, label: QualityLabel) -> dict[str, QualityLabel]:
    """Which criteria fail, and how badly, for a frame of this label."""
    if label is QualityLabel.GOOD:
        return {}
    names = [list(_CRITERIA)[i] for i in rng.permutation(len(_CRITERIA))]
    if label is QualityLabel.MEDIUM:
        count = 2 if rng.random() < 0.3 else 1
        return dict.fromkeys(names[:count], QualityLabel.MEDIUM)
    count = 2 if rng.random() < 0.25 else 1
    grades = dict.fromkeys(names[:count], QualityLabel.BAD)
    if rng.random() < 0.3:
        grades[names[count]] = QualityLabel.MEDIUM
    return grades


def sample_conditions(
    rng: np.random.Generator, label: QualityLabel, thresholds: QualityThresholds | None = None
) -> ObservingConditions:
    """Draw conditions whose label is `label`, every criterion clear of its thresholds."""
    thresholds = thresholds or QualityThresholds()
    degraded = _degraded_grades(rng, label)
    values = {
        _CRITERIA[name].field: _draw_criterion(
            rng, name, degraded.get(name, QualityLabel.GOOD), thresholds
        )
        for name in _CRITERIA
    }
    transparency = float(values["transparency"])
    moon_share = max(0.0, 1.0 - 10 ** (-0.4 * (DARK_SKY_MAG_ARCSEC2 - values["sky_mag_arcsec2"])))
    return ObservingConditions.model_validate(
        values
        | {
            "moffat_beta": float(rng.uniform(3.0, 5.0)),
            "cloud_patchiness": float(rng.uniform(0.3, 0.8) * (1.0 - transparency)),
            "trail_angle_deg": float(rng.uniform(0.0, 180.0)),
            "sky_gradient_fraction": float(
                rng.uniform(0.0, 0.04) + rng.uniform(0.0, 0.25) * moon_share
            ),
            "sky_gradient_angle_deg": float(rng.uniform(0.0, 360.0)),
        }
    )

"""The quality verdict: the model's class probabilities, floored by what the site measured.

The CNN sees the frame's shape (seeing, trailing, focus, satellite trails, saturation) but not
how much starlight came through or how bright the sky was: its input is normalised. Those two
criteria are measured against the site's calibration (`imaging.photometry`), and the
satellite trails are also counted on the pixels (`imaging.trails`); each is graded with the
fleet's thresholds and a frame is never better than its measured grades. Given a floor, a
class better than the floor becomes the floor: the verdict's probabilities move the model's
belief in the better classes onto the floor class, and the label is the most probable class.
"""

import numpy as np

from imaging.quality_thresholds import QualityThresholds, favourable_bound, worst
from protos import QualityLabel

CLASS_ORDER = (QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD)
PHOTOMETRIC_CRITERIA = frozenset({"transparency", "sky_brightness"})
"""Criteria (names in `QualityThresholds`) graded from photometry, not by the model."""


def measured_floor(
    transparency: float | None,
    transparency_error: float | None,
    sky_brightness_mag_arcsec2: float | None,
    satellite_trails: int | None,
    thresholds: QualityThresholds,
) -> QualityLabel:
    """The worst grade of the measured transparency (at its favourable 1-sigma bound), sky
    brightness and satellite trails; good where unknown."""
    grades = []
    if satellite_trails is not None:
        grades.append(thresholds.satellite_trails.grade(satellite_trails))
    if transparency is not None:
        limit = thresholds.transparency
        grades.append(limit.grade(favourable_bound(transparency, transparency_error, limit)))
    if sky_brightness_mag_arcsec2 is not None:
        grades.append(thresholds.sky_brightness.grade(sky_brightness_mag_arcsec2))
    return worst(grades)


def image_grade(grades: dict[str, QualityLabel]) -> QualityLabel:
    """The worst of the criteria the model is to see, from all of a frame's grades."""
    return worst([grade for name, grade in grades.items() if name not in PHOTOMETRIC_CRITERIA])


def floored_probabilities(probabilities: np.ndarray, floor: QualityLabel) -> np.ndarray:
    """Probabilities over good/medium/bad once no class better than `floor` is possible,
    renormalised (a float32 model's probabilities can sum to one plus a rounding error, which
    the sum onto the floor class would carry above one)."""
    at = CLASS_ORDER.index(floor)
    floored = np.array(probabilities, dtype=np.float64)
    floored[at] = floored[: at + 1].sum()
    floored[:at] = 0.0
    return np.clip(floored / floored.sum(), 0.0, 1.0)

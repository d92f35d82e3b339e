"""The quality verdict: every criterion graded once, with its error, and the label, the
probabilities and the reasons all read from that one grading.

A frame's criteria are measured in physical units (`imaging.criteria.frame_criteria`): seeing,
trailing and focus from the stars' PSF (`imaging.psf`), transparency and sky brightness from
the site's photometry, the saturated fraction and the satellite trails from the pixels.
`judge` grades each with the fleet's thresholds (`imaging.quality_thresholds`) and its error:
the grade of the measured value, and the probability of each class given the error (a
Gaussian error; a count is graded on its half-way points). The CNN judges what it sees well
and the metrics may miss (a pattern, a defect, a criterion that could not be measured), from
its 128x128 view without the pixel scale; its probabilities are one more opinion, tempered
(`MODEL_TEMPERATURE`) and, where everything it sees was measured, weighted
(`MODEL_WEIGHT_WHEN_MEASURED`), that can only make a frame worse:

- probabilities: P(frame at most class k) = the product over the measured criteria and the
  model of P(that one at most k), the worst-of rule applied to probabilities, sharpened by
  `VERDICT_TEMPERATURE`;
- label: the worst of the measured grades and the most probable class, so never better than a
  measurement; the confidence is the label's probability;
- reasons: one for every measured criterion worse than good, judged against the limit it
  failed; when the label is worse than every measurement, one more that says the model saw it
  and names the criterion it most likely saw (one that could not be measured, else the
  measured one nearest its limit).

So a good frame has no reason and every other label has at least one.
"""

import math
from dataclasses import dataclass

import numpy as np

from imaging.criteria import Criterion, CriterionGrade, Measurement, frame_criteria
from imaging.quality_reasons import CLASS_ORDER, MODEL_SEES, criterion_reason, model_reason
from imaging.quality_thresholds import Limit, QualityThresholds, favourable_bound, worst
from protos import ImageMetrics, QualityLabel, QualityReason

__all__ = ["CLASS_ORDER", "Verdict", "explain_quality", "judge"]

PHOTOMETRIC_CRITERIA = frozenset({"transparency", "sky_brightness"})
"""Criteria (names in `QualityThresholds`) graded from photometry, not by the model."""
MODEL_TEMPERATURE = 0.7
"""The model's probabilities are raised to 1 / T and renormalised before they are combined."""
MODEL_WEIGHT_WHEN_MEASURED = 0.7
"""Where every criterion the model sees was measured, its opinion that the frame is worse is
trusted with this weight (the rest of its belief stays on good): it then adds only what the
metrics missed."""
VERDICT_TEMPERATURE = 0.8
"""The combined probabilities are raised to 1 / T: the measurements' error floors leave them a
little underconfident. The three constants maximise the likelihood of the true labels of 480
fresh simulated frames (the quality bench's set); on another 480 (seed 7) the expected
calibration error is 0.027 (docs/quality-model.md, *The verdict*)."""


@dataclass(frozen=True)
class Verdict:
    """The label, its class probabilities and the reasons, from one grading."""

    label: QualityLabel
    probabilities: np.ndarray
    grades: tuple[CriterionGrade, ...]
    model_probabilities: np.ndarray | None
    reasons: tuple[QualityReason, ...]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[CLASS_ORDER.index(self.label)])

    @property
    def measured_grade(self) -> QualityLabel:
        """The worst grade of the measured criteria alone."""
        return worst([grade.grade for grade in self.grades if grade.grade is not None])


def judge(
    criteria: list[Criterion],
    model_probabilities: np.ndarray | None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> Verdict:
    """Grade every criterion once, add the model's view, and derive label and reasons."""
    grades = tuple(grade_criterion(c, getattr(thresholds, c.name)) for c in criteria)
    measured = [g for g in grades if g.grade is not None]
    cumulative = np.ones(2)  # P(at most good), P(at most medium)
    for grade in measured:
        cumulative *= np.cumsum(grade.probabilities)[:2]
    model = None if model_probabilities is None else calibrated(model_probabilities)
    if model is not None:
        cumulative *= np.cumsum(_weighted(model, grades))[:2]
    probabilities = np.diff(np.concatenate([[0.0], cumulative, [1.0]])).clip(0.0, 1.0)
    probabilities = probabilities ** (1.0 / VERDICT_TEMPERATURE)
    probabilities /= probabilities.sum()
    measured_grade = worst([g.grade for g in measured if g.grade is not None])
    model_grade = CLASS_ORDER[int(np.argmax(probabilities))] if model is not None else None
    label = worst([measured_grade, *([model_grade] if model_grade else [])])
    reasons = [reason for g in measured if (reason := criterion_reason(g)) is not None]
    if model is not None and label != measured_grade:
        at = CLASS_ORDER.index(label)
        reasons.append(model_reason(label, model, grades, float(probabilities[at])))
    return Verdict(
        label=label,
        probabilities=probabilities,
        grades=grades,
        model_probabilities=model,
        reasons=tuple(reasons),
    )


def explain_quality(
    metrics: ImageMetrics,
    *,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[QualityReason]:
    """The reasons `judge` gives for the wire's metrics alone: no model, the seeing from
    `fwhm_arcsec` and the trailing from `ellipticity`, without errors (the trail's length and
    the focus are not on the wire)."""
    criteria = [
        c
        for c in frame_criteria(metrics, None, None)
        if c.name not in ("seeing", "trailing", "focus")
    ]
    if metrics.ellipticity is not None:
        criteria.insert(
            0,
            Criterion(
                "ellipticity", "trailing", "star ellipticity", Measurement(metrics.ellipticity)
            ),
        )
    if metrics.fwhm_arcsec is not None:
        criteria.insert(
            0, Criterion("seeing", "seeing", "seeing", Measurement(metrics.fwhm_arcsec))
        )
    return list(judge(criteria, None, thresholds).reasons)


def _weighted(model: np.ndarray, grades: tuple[CriterionGrade, ...]) -> np.ndarray:
    """The model's probabilities as they count: in full where a criterion it sees could not be
    measured, else `MODEL_WEIGHT_WHEN_MEASURED` of its belief in the worse classes."""
    seen = [g for g in grades if g.criterion.name in MODEL_SEES]
    if any(g.grade is None for g in seen) or not seen:
        return model
    weight = MODEL_WEIGHT_WHEN_MEASURED
    return np.asarray(weight * model + (1.0 - weight) * np.array([1.0, 0.0, 0.0]))


def grade_criterion(criterion: Criterion, limit: Limit) -> CriterionGrade:
    """The grade of the measured value and the class probabilities its error allows."""
    measurement = criterion.measurement
    if measurement is None or not math.isfinite(measurement.value):
        return CriterionGrade(criterion, limit, None, np.array([1.0, 0.0, 0.0]))
    shift = 0.5 if criterion.count else 0.0
    sign = 1.0 if limit.direction == "lower_is_better" else -1.0
    good_edge, bad_edge = limit.good + sign * shift, limit.bad + sign * shift
    error = max(measurement.error, 0.0)
    at_most_good = _below(good_edge, measurement.value, error, sign)
    at_most_medium = _below(bad_edge, measurement.value, error, sign)
    probabilities = np.array(
        [at_most_good, max(at_most_medium - at_most_good, 0.0), 1.0 - at_most_medium]
    )
    value = measurement.value
    grade = (
        QualityLabel.GOOD
        if sign * (value - good_edge) <= 0
        else QualityLabel.MEDIUM
        if sign * (value - bad_edge) <= 0
        else QualityLabel.BAD
    )
    return CriterionGrade(criterion, limit, grade, probabilities)


def _below(edge: float, value: float, error: float, sign: float) -> float:
    """P(the true value is on the good side of `edge`)."""
    distance = sign * (edge - value)
    if error <= 0:
        return 1.0 if distance >= 0 else 0.0
    return 0.5 * math.erfc(-distance / (error * math.sqrt(2.0)))


def calibrated(probabilities: np.ndarray, temperature: float = MODEL_TEMPERATURE) -> np.ndarray:
    """The model's probabilities tempered by `temperature` (> 1 softens them)."""
    logs = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)) / temperature
    weights = np.exp(logs - logs.max())
    return np.asarray(weights / weights.sum())


def measured_floor(
    transparency: float | None,
    transparency_error: float | None,
    sky_brightness_mag_arcsec2: float | None,
    satellite_trails: int | None,
    thresholds: QualityThresholds,
) -> QualityLabel:
    """The training data set's floor (`training.dataset`): the worst grade of the measured
    transparency (at its favourable 1-sigma bound), sky brightness and satellite trails; good
    where unknown. Sites grade with `judge`."""
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
    renormalised (the training evaluation's floor; sites grade with `judge`)."""
    at = CLASS_ORDER.index(floor)
    floored = np.array(probabilities, dtype=np.float64)
    floored[at] = floored[: at + 1].sum()
    floored[:at] = 0.0
    return np.clip(floored / floored.sum(), 0.0, 1.0)

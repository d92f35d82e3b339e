"""The sentences behind a quality verdict: one `QualityReason` per graded criterion that is not
good, and one for a verdict the model alone made worse.

The grading itself is `imaging.verdict.judge`'s, done once; this module only words it. A
medium value is reported against the good limit, a bad one against the bad limit, with its
error: "seeing 3.32 ± 0.08 arcsec exceeds the 2.5 arcsec limit for good frames".
"""

import numpy as np

from imaging.criteria import CriterionGrade
from protos import QualityLabel, QualityReason
from protos.frames import Reason

CLASS_ORDER = (QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD)

# Units left out of the sentences: "ellipticity 0.4 exceeds the 0.25 limit" reads better.
DIMENSIONLESS_UNITS = frozenset({"1-b/a", "ratio", "fraction", "count"})
MODEL_SEES = frozenset({"seeing", "trailing", "focus", "satellite_trails", "saturated_fraction"})
"""Criteria (names in `QualityThresholds`) a picture shows: what the model's view can add."""


def criterion_reason(grade: CriterionGrade) -> QualityReason | None:
    """The reason a criterion gives: None when it is good or was not measured."""
    measurement = grade.criterion.measurement
    if grade.grade in (None, QualityLabel.GOOD) or measurement is None:
        return None
    limit = grade.limit
    threshold, frames = (
        (limit.good, "good") if grade.grade == QualityLabel.MEDIUM else (limit.bad, "medium")
    )
    unit = "" if limit.unit in DIMENSIONLESS_UNITS else f" {limit.unit}"
    return QualityReason(
        reason=grade.criterion.reason,
        value=measurement.value,
        threshold=threshold,
        unit=limit.unit,
        message=(
            f"{_measured(grade)} {_verb(grade)} the {threshold:g}{unit} limit for {frames} frames"
        ),
    )


def model_reason(
    label: QualityLabel,
    model: np.ndarray,
    grades: tuple[CriterionGrade, ...],
    probability: float,
) -> QualityReason:
    """Why a frame is worse than all its measurements: the model saw it (`probability` is the
    verdict's for `label`), most likely in a criterion that could not be measured or, all
    measured, in the one likeliest to reach `label`."""
    at = CLASS_ORDER.index(label)
    at_least = float(model[at:].sum())
    seen = [g for g in grades if g.criterion.name in MODEL_SEES]
    unmeasured = [g for g in seen if g.grade is None]
    reason: Reason = "artefacts"
    if unmeasured:
        suspect = unmeasured[0]
        reason = suspect.criterion.reason
        cause = f"{suspect.criterion.quantity} not measured ({suspect.criterion.missing})"
    elif seen:
        suspect = max(seen, key=lambda g: float(g.probabilities[at:].sum()))
        reason = suspect.criterion.reason
        limit = suspect.limit.good if label == QualityLabel.MEDIUM else suspect.limit.bad
        side = "above" if suspect.limit.direction == "lower_is_better" else "below"
        unit = "" if suspect.limit.unit in DIMENSIONLESS_UNITS else f" {suspect.limit.unit}"
        cause = (
            f"worse than the measurements say; the nearest: {_measured(suspect)} "
            f"({label.value} {side} {limit:g}{unit})"
        )
    else:
        cause = "nothing it sees was measured"
    if at_least >= 0.5:
        judged = f"the quality model sees a {label.value} frame (p {at_least:.2f})"
    else:
        judged = (
            f"the quality model and the measurements' errors together make a {label.value} "
            f"frame likeliest (p {probability:.2f})"
        )
    return QualityReason(
        reason=reason,
        value=at_least,
        threshold=0.5,
        unit="probability",
        message=f"{judged}; {cause}"[:256],
    )


def _measured(grade: CriterionGrade) -> str:
    measurement = grade.criterion.measurement
    assert measurement is not None
    unit = "" if grade.limit.unit in DIMENSIONLESS_UNITS else f" {grade.limit.unit}"
    error = (
        f" ± {measurement.error:.2g}" if measurement.error > 0 and not grade.criterion.count else ""
    )
    return f"{grade.criterion.quantity} {measurement.value:.3g}{error}{unit}"


def _verb(grade: CriterionGrade) -> str:
    if grade.limit.direction == "lower_is_better":
        return "exceeds"
    return "is brighter than" if grade.criterion.reason == "background" else "is below"

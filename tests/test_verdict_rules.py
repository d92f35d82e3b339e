"""One verdict grades every criterion once and derives the label, the probabilities and the
reasons from that grading: the rules hold for any measurements and any model answer."""

import numpy as np
import pytest

from imaging.criteria import Criterion, Measurement
from imaging.quality_thresholds import QualityThresholds, worst
from imaging.verdict import CLASS_ORDER, judge
from protos import QualityLabel

THRESHOLDS = QualityThresholds()
RANGES = {
    "seeing": ("seeing", "seeing", 0.8, 7.0),
    "trailing": ("trailing", "star trailing", 0.0, 8.0),
    "focus": ("focus", "defocus blur", 0.0, 8.0),
    "transparency": ("transparency", "transparency", 0.05, 1.0),
    "sky_brightness": ("background", "sky brightness", 16.0, 22.0),
}


def random_criteria(rng: np.random.Generator) -> list[Criterion]:
    criteria = []
    for name, (reason, quantity, low, high) in RANGES.items():
        if rng.random() < 0.15:
            criteria.append(Criterion(name, reason, quantity, None, "not measured"))
            continue
        value = rng.uniform(low, high)
        criteria.append(
            Criterion(name, reason, quantity, Measurement(value, rng.uniform(0, 0.1) * value))
        )
    trails = int(rng.integers(0, 4))
    criteria.append(
        Criterion(
            "satellite_trails",
            "artefacts",
            "satellite trails",
            Measurement(trails, 0.25),
            count=True,
        )
    )
    return criteria


@pytest.mark.parametrize("seed", range(200))
def test_label_probabilities_and_reasons_agree(seed):
    rng = np.random.default_rng(seed)
    criteria = random_criteria(rng)
    model = rng.dirichlet([1.0, 1.0, 1.0]) if rng.random() < 0.7 else None

    verdict = judge(criteria, model, THRESHOLDS)

    measured = [g for g in verdict.grades if g.grade is not None]
    assert CLASS_ORDER.index(verdict.label) >= CLASS_ORDER.index(
        worst([g.grade for g in measured if g.grade is not None])
    )
    failing = [g for g in measured if g.grade != QualityLabel.GOOD]
    measured_reasons = [r for r in verdict.reasons if r.unit != "probability"]
    assert [r.reason for r in measured_reasons] == [g.criterion.reason for g in failing]
    for reason, grade in zip(measured_reasons, failing, strict=True):
        limit = grade.limit
        assert reason.threshold == (limit.good if grade.grade == QualityLabel.MEDIUM else limit.bad)
    if verdict.label == QualityLabel.GOOD:
        assert verdict.reasons == ()
    else:
        assert verdict.reasons
    assert verdict.probabilities.sum() == pytest.approx(1.0)
    assert verdict.confidence == verdict.probabilities[CLASS_ORDER.index(verdict.label)]


def test_the_model_never_makes_a_frame_better_than_its_measurements():
    criteria = [Criterion("seeing", "seeing", "seeing", Measurement(4.6, 0.1))]

    verdict = judge(criteria, np.array([0.98, 0.01, 0.01]), THRESHOLDS)

    assert verdict.label == QualityLabel.BAD
    assert [r.reason for r in verdict.reasons] == ["seeing"]


def test_a_frame_the_model_alone_makes_worse_names_the_unmeasured_criterion():
    criteria = [
        Criterion("seeing", "seeing", "seeing", None, "too few clean stars"),
        Criterion("transparency", "transparency", "transparency", Measurement(0.95, 0.02)),
    ]

    verdict = judge(criteria, np.array([0.02, 0.08, 0.9]), THRESHOLDS)

    assert verdict.label == QualityLabel.BAD
    (reason,) = verdict.reasons
    assert reason.reason == "seeing"
    assert reason.unit == "probability"
    assert "too few clean stars" in reason.message


def test_an_uncertain_measurement_lowers_the_confidence():
    certain = judge([Criterion("seeing", "seeing", "seeing", Measurement(3.0, 0.01))], None)
    doubtful = judge([Criterion("seeing", "seeing", "seeing", Measurement(3.0, 0.5))], None)

    assert certain.label == doubtful.label == QualityLabel.MEDIUM
    assert certain.confidence == pytest.approx(1.0)
    assert 0.5 < doubtful.confidence < 0.9


def test_a_count_is_graded_on_the_half_way_points():
    one = judge(
        [
            Criterion(
                "satellite_trails",
                "artefacts",
                "satellite trails",
                Measurement(1, 0.25),
                count=True,
            )
        ],
        None,
    )

    assert one.label == QualityLabel.MEDIUM
    assert 0.95 < one.probabilities[1] < 1.0  # 0 and 2 are 2 sigma away
    assert one.reasons[0].message == "satellite trails 1 exceeds the 0 limit for good frames"

"""The promotion gate on hand-made predictions: a better candidate passes, a worse one fails on
the primary metric, and a better-on-average one fails when one class's recall falls by more
than the margin; the verdict says why in words and carries both models' metrics."""

import json

import numpy as np
import pytest

from training.gate import GatePolicy, ModelScores, class_recall, judge
from training.realbogus.evaluate import roc_auc

CLASSES = ("good", "medium", "bad")
LABELS = np.array([0] * 10 + [1] * 10 + [2] * 10)


def _scores(name: str, predictions: np.ndarray, labels: np.ndarray = LABELS) -> ModelScores:
    recall, support = class_recall(labels, predictions, CLASSES)
    return ModelScores(
        model=name,
        samples=len(labels),
        metrics={"accuracy": float(np.mean(predictions == labels))},
        recall=recall,
        support=support,
    )


def _with_errors(wrong: dict[int, int]) -> np.ndarray:
    """The true labels with the frames given as {index: predicted class} changed."""
    predictions = LABELS.copy()
    for index, predicted in wrong.items():
        predictions[index] = predicted
    return predictions


ACCURACY = GatePolicy(metric="accuracy", margin=0.01)


def test_a_better_candidate_is_promoted_with_the_reason_in_words():
    serving = _scores("quality v5", _with_errors({0: 1, 1: 1, 10: 2, 20: 1}))
    candidate = _scores("candidate", _with_errors({0: 1}))
    verdict = judge(candidate, serving, ACCURACY)
    assert verdict.promoted
    assert verdict.failures == []
    assert verdict.reason.startswith("promoted: accuracy 0.9667 against the serving model's 0.8667")
    rows = {row.name: row for row in verdict.comparison}
    assert rows["accuracy"].difference == pytest.approx(0.1)
    assert rows["recall medium"].serving == pytest.approx(0.9)
    assert rows["recall medium"].candidate == pytest.approx(1.0)
    dumped = json.loads(verdict.model_dump_json())
    assert dumped["comparison"][0]["difference"] == pytest.approx(0.1)
    assert dumped["serving"]["model"] == "quality v5"


def test_a_candidate_worse_on_the_primary_metric_is_rejected():
    serving = _scores("quality v5", _with_errors({0: 1}))
    candidate = _scores("candidate", _with_errors({0: 1, 1: 1, 2: 1, 11: 0, 12: 0, 21: 1}))
    verdict = judge(candidate, serving, ACCURACY)
    assert not verdict.promoted
    assert verdict.failures[0] == (
        "accuracy 0.8000 is 0.1667 below the serving model's 0.9667, more than the margin 0.0100"
    )
    assert verdict.reason.startswith("rejected: accuracy 0.8000")


def test_a_better_average_does_not_hide_a_class_the_candidate_stopped_seeing():
    # The serving model misses 4 good and 2 bad frames but sees every medium one; the candidate
    # misses 2 medium frames only: better accuracy, medium recall down 0.2.
    serving = _scores("quality v5", _with_errors({0: 1, 1: 1, 2: 1, 3: 1, 20: 1, 21: 1}))
    candidate = _scores("candidate", _with_errors({10: 0, 11: 2}))
    verdict = judge(candidate, serving, ACCURACY)
    assert candidate.metrics["accuracy"] > serving.metrics["accuracy"]
    assert not verdict.promoted
    assert verdict.failures == [
        "recall of medium fell from 1.0000 to 0.8000, more than the margin 0.0100 allows"
    ]


def test_a_drop_within_the_margin_passes_and_a_negative_margin_asks_for_an_improvement():
    serving = _scores("quality v5", _with_errors({0: 1}))
    candidate = _scores("candidate", _with_errors({0: 1, 10: 2}))
    assert judge(candidate, serving, GatePolicy(metric="accuracy", margin=0.1)).promoted
    assert not judge(candidate, serving, ACCURACY).promoted
    twin = judge(serving, serving, GatePolicy(metric="accuracy", margin=-0.01))
    assert not twin.promoted
    assert "does not beat the serving model's 0.9667 by the 0.0100 asked for" in twin.reason


def test_the_first_candidate_is_promoted_when_no_model_serves():
    verdict = judge(_scores("candidate", _with_errors({0: 1})), None, ACCURACY)
    assert verdict.promoted
    assert "no model serves yet" in verdict.reason
    assert all(row.serving is None for row in verdict.comparison)


def test_real_bogus_is_gated_on_roc_auc_and_an_undefined_auc_is_a_rejection():
    labels = np.array([0, 0, 0, 1, 1, 1])
    serving_scores = np.array([0.1, 0.6, 0.3, 0.4, 0.8, 0.9])
    candidate_scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])

    def scores(name: str, real: np.ndarray, truth: np.ndarray = labels) -> ModelScores:
        recall, support = class_recall(truth, (real >= 0.5).astype(int), ("bogus", "real"))
        return ModelScores(
            model=name,
            samples=len(truth),
            metrics={"roc_auc": roc_auc(real, truth)},
            recall=recall,
            support=support,
        )

    policy = GatePolicy(metric="roc_auc", margin=0.0)
    verdict = judge(scores("candidate", candidate_scores), scores("v5", serving_scores), policy)
    assert verdict.promoted, verdict.reason
    assert "roc_auc 1.0000 against the serving model's 0.8889 (+0.1111)" in verdict.reason
    only_reals = np.ones(6, dtype=int)
    undefined = judge(scores("candidate", candidate_scores, only_reals), None, policy)
    assert not undefined.promoted
    assert undefined.reason == "rejected: the candidate's roc_auc is undefined on the held-out set"


def test_an_unknown_metric_is_an_error_that_names_the_known_ones():
    scores = _scores("candidate", LABELS)
    with pytest.raises(ValueError, match=r"no metric 'f1'.*known: accuracy"):
        judge(scores, scores, GatePolicy(metric="f1"))

"""The promotion gate: a candidate model replaces the serving one only if it is at least as good
on the same held-out set.

Both models are scored on the same fixed held-out set (`training.holdout`) into `ModelScores`:
the metrics of the whole set (accuracy, ROC AUC, ...) and each class's recall. `judge` compares
them under a `GatePolicy`, a primary metric (accuracy for the quality model, ROC AUC for
real/bogus; higher is better) and a margin:

- the candidate's primary metric may be at most `margin` below the serving model's;
- no class's recall may fall by more than `margin` either, so a better average cannot hide a
  class the new model stopped seeing.

A negative margin asks for an improvement of that size. The `GateVerdict` says in words why the
candidate was promoted or rejected, and carries both models' metrics side by side. Pure
numbers in, a verdict out: tested on hand-made predictions (`tests/test_gate.py`).
"""

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

TOLERANCE = 1e-9
"""Differences below this are rounding, not a change."""
QUALITY_METRIC = "accuracy"
REALBOGUS_METRIC = "roc_auc"


class GatePolicy(BaseModel):
    """What the gate compares and how much worse a candidate may be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(min_length=1, description="The primary metric; higher is better.")
    margin: float = Field(
        default=0.01,
        ge=-1.0,
        le=1.0,
        description="How far below the serving model the candidate's primary metric and each "
        "class's recall may fall; negative: the improvement asked for.",
    )


class ModelScores(BaseModel):
    """One model on the held-out set."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="Which model: name and version, or 'candidate'.")
    sha256: str | None = None
    samples: int = Field(ge=0)
    metrics: dict[str, float | None] = Field(description="None: undefined on this set.")
    recall: dict[str, float] = Field(description="Per class with held-out samples.")
    support: dict[str, int] = Field(default_factory=dict)


class MetricComparison(BaseModel):
    """One metric of both models, side by side."""

    model_config = ConfigDict(frozen=True)

    name: str
    candidate: float | None
    serving: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def difference(self) -> float | None:
        """Candidate minus serving (None when either is undefined)."""
        if self.candidate is None or self.serving is None:
            return None
        return self.candidate - self.serving


class GateVerdict(BaseModel):
    """Promoted or not, why in words, and both models' metrics."""

    model_config = ConfigDict(frozen=True)

    promoted: bool
    reason: str
    policy: GatePolicy
    candidate: ModelScores
    serving: ModelScores | None
    comparison: list[MetricComparison]
    failures: list[str] = Field(default_factory=list)


def class_recall(
    labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, int]]:
    """Recall and support of each class that has samples."""
    recall: dict[str, float] = {}
    support: dict[str, int] = {}
    for index, name in enumerate(class_names):
        members = labels == index
        if members.any():
            recall[name] = float(np.mean(predictions[members] == index))
            support[name] = int(members.sum())
    return recall, support


def _comparison(candidate: ModelScores, serving: ModelScores | None) -> list[MetricComparison]:
    rows = [
        MetricComparison(
            name=name, candidate=value, serving=serving.metrics.get(name) if serving else None
        )
        for name, value in candidate.metrics.items()
    ]
    rows += [
        MetricComparison(
            name=f"recall {name}",
            candidate=value,
            serving=serving.recall.get(name) if serving else None,
        )
        for name, value in candidate.recall.items()
    ]
    return rows


def _metric_failure(name: str, candidate: float, serving: float, margin: float) -> str | None:
    """Why the primary metric fails the gate, or None."""
    if candidate >= serving - margin - TOLERANCE:
        return None
    if margin < 0:
        return (
            f"{name} {candidate:.4f} does not beat the serving model's {serving:.4f} by the "
            f"{-margin:.4f} asked for"
        )
    return (
        f"{name} {candidate:.4f} is {serving - candidate:.4f} below the serving model's "
        f"{serving:.4f}, more than the margin {margin:.4f}"
    )


def _recall_failures(candidate: ModelScores, serving: ModelScores, margin: float) -> list[str]:
    failures = []
    for name, before in serving.recall.items():
        after = candidate.recall.get(name)
        if after is None or after >= before - margin - TOLERANCE:
            continue
        change = "fell" if after < before else "rose too little"
        failures.append(
            f"recall of {name} {change} from {before:.4f} to {after:.4f}, more than the margin "
            f"{margin:.4f} allows"
        )
    return failures


def judge(candidate: ModelScores, serving: ModelScores | None, policy: GatePolicy) -> GateVerdict:
    """The gate's verdict on `candidate` against `serving` (None: no model serves yet)."""
    if policy.metric not in candidate.metrics:
        known = ", ".join(candidate.metrics)
        raise ValueError(f"no metric {policy.metric!r} on the held-out set (known: {known})")
    value = candidate.metrics[policy.metric]
    before = serving.metrics.get(policy.metric) if serving is not None else None
    failures: list[str] = []
    if value is None:
        failures.append(f"the candidate's {policy.metric} is undefined on the held-out set")
    elif serving is not None:
        if before is None:
            failures.append(f"the serving model's {policy.metric} is undefined on the held-out set")
        else:
            failure = _metric_failure(policy.metric, value, before, policy.margin)
            failures += [failure] if failure else []
        failures += _recall_failures(candidate, serving, policy.margin)
    if failures:
        reason = "rejected: " + "; ".join(failures)
    elif value is None or before is None:
        reason = (
            f"promoted: no model serves yet, so the candidate ({policy.metric} {value:.4f}) "
            "becomes the first version"
        )
    else:
        reason = (
            f"promoted: {policy.metric} {value:.4f} against the serving model's {before:.4f} "
            f"({value - before:+.4f}), and no class's recall fell by more than the margin "
            f"{policy.margin:.4f}"
        )
    return GateVerdict(
        promoted=not failures,
        reason=reason,
        policy=policy,
        candidate=candidate,
        serving=serving,
        comparison=_comparison(candidate, serving),
        failures=failures,
    )

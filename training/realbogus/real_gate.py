"""Whether a real/bogus candidate replaces the serving model: better on held-out real alerts, not
worse on simulations (`training.gate.judge`, twice).

On the held-out real alerts (`training.realbogus.real_split`: the Fink validation objects and the
kowalski alerts) the candidate must beat the serving model by `REAL_IMPROVEMENT` in ROC AUC
against `drb` and in recall on `drb > 0.9` at the threshold in force (a negative margin of the
gate). On the fresh simulated held-out triplets it may fall at most `SIMULATED_MARGIN` in ROC AUC
and in each class's recall at that threshold: the simulations still stand for what our own
sites' pairs look like. Both must pass.
"""

import numpy as np

from imaging.transients.realbogus import CLASS_NAMES, RealBogusModel
from training.gate import (
    REALBOGUS_METRIC,
    GatePolicy,
    GateVerdict,
    MetricComparison,
    ModelScores,
    class_recall,
    judge,
)
from training.realbogus.dataset import Triplets
from training.realbogus.evaluate import roc_auc
from training.realbogus.real_metrics import RealEvaluation

REAL_IMPROVEMENT = 0.01
"""How much better the candidate must be on real alerts (AUC and recall): less is noise of one
or two alerts' ranks."""
SIMULATED_MARGIN = 0.01
"""How much worse it may be on simulations (the gate's default margin, as fleet runs use)."""
SURE_RECALL = "real (drb > 0.9)"


def real_scores(label: str, evaluation: RealEvaluation) -> ModelScores:
    """A model's figures on the held-out real alerts, as the gate reads them."""
    return ModelScores(
        model=label,
        samples=evaluation.alerts,
        metrics={REALBOGUS_METRIC: evaluation.roc_auc},
        recall={} if evaluation.recall_sure is None else {SURE_RECALL: evaluation.recall_sure},
    )


def simulated_scores(
    label: str, model: RealBogusModel, held_out: Triplets, threshold: float
) -> ModelScores:
    """A model's ROC AUC and each class's recall at `threshold` on simulated triplets."""
    scores = model.score(held_out.stamps)
    recall, support = class_recall(
        held_out.labels, (scores >= threshold).astype(np.int64), CLASS_NAMES
    )
    return ModelScores(
        model=label,
        sha256=model.manifest.sha256,
        samples=len(held_out.labels),
        metrics={REALBOGUS_METRIC: roc_auc(scores, held_out.labels == 1)},
        recall=recall,
        support=support,
    )


def _prefixed(prefix: str, rows: list[MetricComparison]) -> list[MetricComparison]:
    return [
        MetricComparison(name=f"{prefix} {r.name}", candidate=r.candidate, serving=r.serving)
        for r in rows
    ]


def judge_on_real_and_simulated(
    models: tuple[RealBogusModel, RealBogusModel],
    real: tuple[RealEvaluation, RealEvaluation],
    held_out: Triplets,
    threshold: float,
) -> GateVerdict:
    """One verdict on (candidate, serving) from their real-alert figures and simulated scores."""
    candidate, serving = models
    serving_label = f"realbogus v{serving.manifest.version}"
    on_real = judge(
        real_scores("candidate", real[0]),
        real_scores(serving_label, real[1]),
        GatePolicy(metric=REALBOGUS_METRIC, margin=-REAL_IMPROVEMENT),
    )
    on_simulated = judge(
        simulated_scores("candidate", candidate, held_out, threshold),
        simulated_scores(serving_label, serving, held_out, threshold),
        GatePolicy(metric=REALBOGUS_METRIC, margin=SIMULATED_MARGIN),
    )
    return GateVerdict(
        promoted=on_real.promoted and on_simulated.promoted,
        reason=f"real alerts: {on_real.reason}; simulations: {on_simulated.reason}",
        policy=on_real.policy,
        candidate=on_real.candidate,
        serving=on_real.serving,
        comparison=_prefixed("real", on_real.comparison)
        + _prefixed("simulated", on_simulated.comparison),
        failures=on_real.failures + on_simulated.failures,
    )

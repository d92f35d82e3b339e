"""How a real/bogus model does on held-out real ZTF alerts against ZTF's `drb`.

ROC AUC against `drb > 0.5` with a 95 % bootstrap interval that resamples *objects* (an
object's alerts are not independent, so resampling alerts would make the interval too
narrow); recall at the threshold in force on the alerts ZTF is sure of (`drb > 0.9`), overall,
by magnitude bin, and for the kinds the issue names: bright (saturated-core) transients,
transients on a reference source (a galaxy nucleus or a variable star) and fading ones
(negative differences). ZTF's first-generation `rb` is scored the same way beside ours, as the
yardstick (it reaches about 0.93 against `drb` in ZTF's own papers).
"""

from itertools import pairwise

import numpy as np
from pydantic import BaseModel, Field

from imaging.transients.realbogus import RealBogusModel
from training.realbogus.evaluate import roc_auc
from training.realbogus.real_split import RealAlerts

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 2026
DRB_SURE = 0.9
"""ZTF's `drb` above which an alert counts as surely real for the recall figures."""
MAGNITUDE_EDGES = (15.0, 17.0, 18.5, 19.5)
"""Bin edges (mag) of recall by magnitude: < 15 is where ZTF's cores saturate (30 s, ~12.5-14)
and our simulations hold nothing as bright; the rest split the reals about evenly."""
BRIGHT_MAG = 15.0
ON_SOURCE_PX = 1.0
"""A transient within this distance (px, ~1") of a reference source sits on it: a galaxy
nucleus or a variable star."""


class BinRecall(BaseModel):
    """Recall at the threshold on `drb > 0.9` alerts of one bin or kind."""

    name: str
    alerts: int = Field(ge=0)
    recall: float | None = Field(description="None when the bin holds no such alert.")


class RealEvaluation(BaseModel):
    """One model's figures on one set of real alerts."""

    alerts: int
    objects: int
    negatives: int = Field(description="Alerts with drb <= 0.5.")
    roc_auc: float | None
    roc_auc_low: float | None = Field(description="2.5th percentile of the object bootstrap.")
    roc_auc_high: float | None = Field(description="97.5th percentile of the object bootstrap.")
    ztf_rb_auc: float | None = Field(description="ZTF's first-generation rb on the same alerts.")
    threshold: float
    recall_sure: float | None = Field(description="Recall on drb > 0.9 at the threshold.")
    by_magnitude: list[BinRecall]
    by_kind: list[BinRecall]


def bootstrap_auc(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float | None, float | None]:
    """2.5th and 97.5th percentiles of the AUC over resamplings of whole `groups` (objects);
    None when no resampling holds both classes."""
    names, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == i) for i in range(len(names))]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = []
    for _ in range(samples):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        value = roc_auc(scores[rows], labels[rows])
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _recall(passed: np.ndarray, name: str) -> BinRecall:
    return BinRecall(
        name=name, alerts=len(passed), recall=float(np.mean(passed)) if len(passed) else None
    )


def magnitude_bins() -> list[tuple[str, float, float]]:
    """(name, low, high) of each magnitude bin."""
    edges = (-np.inf, *MAGNITUDE_EDGES, np.inf)
    names = [f"< {MAGNITUDE_EDGES[0]:g}"]
    names += [f"{lo:g}-{hi:g}" for lo, hi in pairwise(MAGNITUDE_EDGES)]
    names += [f">= {MAGNITUDE_EDGES[-1]:g}"]
    return [(name, lo, hi) for name, (lo, hi) in zip(names, pairwise(edges), strict=True)]


def evaluate_scores(scores: np.ndarray, alerts: RealAlerts, threshold: float) -> RealEvaluation:
    """The figures of `scores` (one per alert) on `alerts` at `threshold`."""
    labels = alerts.labels
    low, high = bootstrap_auc(scores, labels, alerts.objects)
    sure = alerts.drb > DRB_SURE
    passed = scores >= threshold
    by_magnitude = [
        _recall(passed[sure & (alerts.magpsf >= lo) & (alerts.magpsf < hi)], name)
        for name, lo, hi in magnitude_bins()
    ]
    kinds = {
        f"bright (< {BRIGHT_MAG:g} mag)": alerts.magpsf < BRIGHT_MAG,
        f"on a reference source (< {ON_SOURCE_PX:g} px)": alerts.distnr_px < ON_SOURCE_PX,
        "fading (negative difference)": alerts.fading,
    }
    rb_known = np.isfinite(alerts.rb)
    return RealEvaluation(
        alerts=len(labels),
        objects=len(np.unique(alerts.objects)),
        negatives=int(np.sum(labels == 0)),
        roc_auc=roc_auc(scores, labels),
        roc_auc_low=low,
        roc_auc_high=high,
        ztf_rb_auc=roc_auc(alerts.rb[rb_known], labels[rb_known]),
        threshold=threshold,
        recall_sure=_recall(passed[sure], "all").recall,
        by_magnitude=by_magnitude,
        by_kind=[_recall(passed[sure & kind], name) for name, kind in kinds.items()],
    )


def evaluate_on_real_alerts(
    model: RealBogusModel, sets: dict[str, RealAlerts], threshold: float
) -> dict[str, RealEvaluation]:
    """The model's figures on each named set of alerts and on all of them together."""
    joined = RealAlerts.joined(list(sets.values()))
    everything = {**sets, "all held-out": joined}
    return {
        name: evaluate_scores(model.score(alerts.stamps), alerts, threshold)
        for name, alerts in everything.items()
    }

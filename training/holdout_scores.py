"""A model, as a site loads it, scored on a held-out set: the `ModelScores` the gate compares.

Both the candidate and the serving model go through the same path: their version folder is
loaded and verified as a site loads it (`QualityModel`, `RealBogusModel`: sha256 against the
manifest, frozen for inference) and scored on the same held-out arrays. The quality model is
judged as a site judges a frame (its probabilities floored by the frame's photometry) against
the frame's full label; real/bogus by the probability of real, ROC AUC over the whole set and
per source, and each class's recall at the site's threshold 0.5.
"""

from pathlib import Path

import numpy as np

from imaging.quality_model import QualityModel
from imaging.transients.realbogus import CLASS_NAMES as REALBOGUS_CLASSES
from imaging.transients.realbogus import RealBogusModel
from training.evaluate import QualityEvaluation, evaluate_predictions
from training.gate import ModelScores, class_recall
from training.holdout import QualityHoldout, RealBogusHoldout
from training.quality_net import CLASS_NAMES as QUALITY_CLASSES
from training.realbogus.evaluate import roc_auc
from training.train_quality import verdict_probabilities

BATCH = 64
REAL_THRESHOLD = 0.5


def score_quality_model(
    model_dir: Path, holdout: QualityHoldout, label: str
) -> tuple[ModelScores, QualityEvaluation]:
    """The quality model in `model_dir` on the held-out frames, floored as a site floors them."""
    model = QualityModel.load(model_dir)
    probabilities = np.concatenate(
        [
            model.predict(holdout.images[start : start + BATCH])
            for start in range(0, len(holdout.images), BATCH)
        ]
    )
    verdicts = verdict_probabilities(probabilities, holdout.floors)
    evaluation = evaluate_predictions(holdout.labels, verdicts, QUALITY_CLASSES)
    predictions = verdicts.argmax(axis=1)
    recall, support = class_recall(holdout.labels, predictions, QUALITY_CLASSES)
    correct = predictions == holdout.labels
    metrics: dict[str, float | None] = {
        "accuracy": evaluation.accuracy,
        "balanced_accuracy": float(np.mean(list(recall.values()))),
    }
    metrics |= {
        f"accuracy {source}": float(correct[holdout.sources == source].mean())
        for source in sorted(set(holdout.sources.tolist()))
    }
    scores = ModelScores(
        model=label,
        sha256=model.manifest.sha256,
        samples=len(holdout.labels),
        metrics=metrics,
        recall=recall,
        support=support,
    )
    return scores, evaluation


def score_realbogus_model(model_dir: Path, holdout: RealBogusHoldout, label: str) -> ModelScores:
    """The real/bogus model in `model_dir` on the held-out triplets."""
    model = RealBogusModel.load(model_dir)
    real = model.score(holdout.stamps)
    predictions = (real >= REAL_THRESHOLD).astype(np.int64)
    recall, support = class_recall(holdout.labels, predictions, REALBOGUS_CLASSES)
    metrics: dict[str, float | None] = {
        "roc_auc": roc_auc(real, holdout.labels),
        "accuracy": float(np.mean(predictions == holdout.labels)),
        "balanced_accuracy": float(np.mean(list(recall.values()))),
    }
    metrics |= {
        f"roc_auc {source}": roc_auc(real[mask], holdout.labels[mask])
        for source in sorted(set(holdout.sources.tolist()))
        for mask in [holdout.sources == source]
    }
    return ModelScores(
        model=label,
        sha256=model.manifest.sha256,
        samples=len(holdout.labels),
        metrics=metrics,
        recall=recall,
        support=support,
    )

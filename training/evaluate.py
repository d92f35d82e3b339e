"""What a quality-model run measured: per-epoch metrics, test-split evaluation (accuracy,
per-class precision and recall, confusion matrix, expected calibration error), the training
history and confusion-matrix plots, and the model card.

The metric functions are pure numpy (labels and probabilities in, numbers out), so they can be
checked against hand-made cases; plotting and the model card only format what was measured.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from training.dataset import DatasetSummary

CALIBRATION_BINS = 15


class EpochMetrics(BaseModel):
    """One epoch of training, as reported to Ray Train and drawn in the history plot."""

    model_config = ConfigDict(frozen=True)

    epoch: int = Field(ge=0)
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    epoch_time_s: float = Field(description="Training and validation passes of this epoch.")
    finished_at_unix_s: float = Field(
        description="Wall clock at the end of the epoch; the gap between two epochs also counts "
        "reporting and checkpointing."
    )


class ClassMetrics(BaseModel):
    """Precision and recall of one class on the evaluated split."""

    model_config = ConfigDict(frozen=True)

    name: str
    precision: float
    recall: float
    support: int


class QualityEvaluation(BaseModel):
    """How the model did on one split it was never trained on."""

    model_config = ConfigDict(frozen=True)

    frames: int
    accuracy: float
    classes: list[ClassMetrics]
    confusion_matrix: list[list[int]] = Field(description="Rows: true class; columns: predicted.")
    expected_calibration_error: float
    calibration_bins: int

    def recall_of(self, name: str) -> float:
        """The recall of one class."""
        return next(c.recall for c in self.classes if c.name == name)


def predict_probabilities(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Softmax class probabilities [N, classes] of a model in eval mode, on the CPU."""
    model.eval()
    batches = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(torch.from_numpy(images[start : start + batch_size]))
            batches.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(batches).astype(np.float64)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true, predicted] of each pair of classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> float:
    """ECE: the frame-weighted mean |accuracy - confidence| over equal-width confidence bins.

    Confidence is the top class probability; a frame with confidence c falls in the bin
    (lo, hi] that holds c (the first bin also holds 0).
    """
    confidences = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    error = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        error += in_bin.mean() * abs(correct[in_bin].mean() - confidences[in_bin].mean())
    return float(error)


def evaluate_predictions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    n_bins: int = CALIBRATION_BINS,
) -> QualityEvaluation:
    """Accuracy, per-class precision and recall, confusion matrix and ECE of predictions."""
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    true_positives = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    classes = [
        ClassMetrics(
            name=name,
            precision=float(true_positives[i] / predicted[i]) if predicted[i] else 0.0,
            recall=float(true_positives[i] / actual[i]) if actual[i] else 0.0,
            support=int(actual[i]),
        )
        for i, name in enumerate(class_names)
    ]
    return QualityEvaluation(
        frames=len(labels),
        accuracy=float(true_positives.sum() / max(len(labels), 1)),
        classes=classes,
        confusion_matrix=matrix.tolist(),
        expected_calibration_error=expected_calibration_error(probabilities, labels, n_bins),
        calibration_bins=n_bins,
    )


class CauseRecall(BaseModel):
    """How often frames of one class failing one criterion were recognised (simulated data)."""

    model_config = ConfigDict(frozen=True)

    label: str
    cause: str
    frames: int
    recognised: int

    @property
    def recall(self) -> float:
        """Fraction of these frames given their true class."""
        return self.recognised / self.frames


def recall_by_cause(
    labels: np.ndarray,
    predictions: np.ndarray,
    causes: Sequence[Sequence[str]],
    class_names: Sequence[str],
) -> list[CauseRecall]:
    """Recall of each (true class, failing criterion) pair; a frame failing two criteria counts
    under both, one failing none under "none". Shows which physics the model can see."""
    tally: dict[tuple[str, str], list[int]] = {}
    for label, prediction, frame_causes in zip(labels, predictions, causes, strict=True):
        for cause in frame_causes or ["none"]:
            counts = tally.setdefault((class_names[label], cause), [0, 0])
            counts[0] += 1
            counts[1] += int(label == prediction)
    return [
        CauseRecall(label=label, cause=cause, frames=frames, recognised=recognised)
        for (label, cause), (frames, recognised) in sorted(
            tally.items(), key=lambda item: (class_names.index(item[0][0]), item[0][1])
        )
    ]


def plot_training_history(history: Sequence[EpochMetrics], path: Path) -> Path:
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    epochs = [m.epoch + 1 for m in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [m.train_loss for m in history], label="train")
    loss_axes.plot(epochs, [m.val_loss for m in history], label="validation")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    accuracy_axes.plot(epochs, [m.train_accuracy for m in history], label="train")
    accuracy_axes.plot(epochs, [m.val_accuracy for m in history], label="validation")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.01))
    for axes in (loss_axes, accuracy_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_confusion_matrix(evaluation: QualityEvaluation, path: Path) -> Path:
    """The confusion matrix as a labelled heat map PNG."""
    matrix = np.array(evaluation.confusion_matrix)
    names = [c.name for c in evaluation.classes]
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set(
        xticks=range(len(names)),
        yticks=range(len(names)),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=f"Test split, accuracy {evaluation.accuracy:.1%}",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


class ModelCard(BaseModel):
    """The facts a model card states about one exported quality model."""

    model_name: str
    model_version: int | None = Field(description="None: a candidate that was not released.")
    parameters: int
    model_size_bytes: int
    preprocess_version: str
    data: DatasetSummary
    hyperparameters: dict[str, Any]
    epochs_run: int
    best_epoch: int
    validation_accuracy: float
    test: QualityEvaluation
    test_by_cause: list[CauseRecall] = Field(
        default_factory=list, description="Only for simulated frames, whose causes are known."
    )
    command: str | None = None

    def to_markdown(self) -> str:
        """The card as markdown: model, data, training, metrics, limits."""
        rows = "\n".join(
            f"| {c.name} | {c.precision:.3f} | {c.recall:.3f} | {c.support} |"
            for c in self.test.classes
        )
        splits = "\n".join(
            f"| {split} | "
            + " | ".join(str(counts.get(name, 0)) for name in self.data.class_names)
            + " |"
            for split, counts in self.data.split_counts.items()
        )
        names = " | ".join(self.data.class_names)
        hyper = ", ".join(f"{key}={value}" for key, value in self.hyperparameters.items())
        command = f"\n```\n{self.command}\n```\n" if self.command else " not recorded.\n"
        by_cause = "\n".join(
            f"| {c.label} | {c.cause} | {c.recognised}/{c.frames} | {c.recall:.1%} |"
            for c in self.test_by_cause
        )
        causes = (
            "\n### Recall by failing criterion (simulated truth)\n"
            "A frame failing two criteria counts under both.\n\n"
            "| class | criterion | recognised | recall |\n| --- | --- | --- | --- |\n"
            f"{by_cause}\n"
            if self.test_by_cause
            else ""
        )
        title = (
            f"v{self.model_version}"
            if self.model_version is not None
            else "candidate (not released)"
        )
        return f"""# Model card: {self.model_name} {title}

## Model
Frame-quality classifier (`training.quality_net.QualityNet`, served as `PanelSymmetricNet`: the
mean of its probabilities over the eight rotations and flips of each mosaic panel): input
float32 `[N, 1, 128, 128]` from `imaging.preprocess.preprocess_frame` (version
`{self.preprocess_version}`), output log-probabilities over `{", ".join(self.data.class_names)}`.
{self.parameters:,} parameters, TorchScript file {self.model_size_bytes / 1e6:.2f} MB.

## Data
Source: `{self.data.source_dir}` ({self.data.frames} frames read, {len(self.data.skipped)}
skipped as unreadable). Stratified {"/".join(f"{f:.0%}" for f in self.data.split_fractions)}
split with seed {self.data.seed}.

| split | {names} |
| --- | {" | ".join("---" for _ in self.data.class_names)} |
{splits}

## Training
{self.epochs_run} epochs run, best validation loss at epoch {self.best_epoch + 1}
(validation accuracy {self.validation_accuracy:.1%}). Hyperparameters: {hyper}.
Reproduce with:{command}
## Test-split metrics (never trained on)
Scored as a site scores: the model (averaged over the eight rotations and flips of its input)
floored by the photometry of each frame where the data set has a calibration and catalogues
(`imaging/verdict.py`), against the frames' labels.
Accuracy {self.test.accuracy:.2%} on {self.test.frames} frames; expected calibration error
{self.test.expected_calibration_error:.4f} ({self.test.calibration_bins} bins).

| class | precision | recall | frames |
| --- | --- | --- | --- |
{rows}

Confusion matrix (rows true, columns predicted): `{self.test.confusion_matrix}`.
{causes}
## Limits
- The labels are those of the training data. Simulated frames are labelled from their true
  conditions with `imaging/quality_thresholds.py`; a real camera whose noise, optics or
  artefacts the simulator does not model may be scored differently. Check on labelled real
  frames before trusting the verdicts, and retrain when the thresholds change.
- One frame does not show how much light clouds took or how bright the sky is: the
  preprocessing measures every frame in units of its own background noise. The model is
  trained on the criteria a picture shows (seeing, trailing, focus, satellite trails,
  saturation); transparency and sky brightness come from the site's photometry, which needs
  the camera's calibration and a catalogue of the field. Without them a frame whose only fault
  is transparency or sky brightness is graded good.
- The model sees only the preprocessed mosaic; the site's measured metrics explain its verdict.
"""

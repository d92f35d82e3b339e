"""The quality model's training run, end to end: (simulate,) build the data set, fit on the
chosen backend, evaluate on the test split, export, and write plots, the model card and the
report (`run_quality_training`, what `skyfleet train quality` runs).

The fit itself is elsewhere: the epoch loop in `training.engine`, the loaders and the `local`
backend in `training.quality_fit`, the `ray` backend in `training.ray_fit` (imported only when
it is used, so a local run does not need Ray).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from pydantic import BaseModel

from imaging.verdict import CLASS_ORDER, floored_probabilities
from protos import QualityLabel
from training.config import QualityTrainingSettings
from training.dataset import (
    DatasetSummary,
    LabelledArrays,
    build_dataset,
    list_labelled_frames,
    load_split,
)
from training.evaluate import (
    CauseRecall,
    EpochMetrics,
    ModelCard,
    QualityEvaluation,
    evaluate_predictions,
    plot_confusion_matrix,
    plot_training_history,
    predict_probabilities,
    recall_by_cause,
)
from training.export import ExportedModel, export_to_repository
from training.quality_fit import FitOutcome, train_locally
from training.quality_net import CLASS_NAMES, PanelSymmetricNet, count_parameters
from training.simulator.dataset import write_mixed_set
from training.simulator.fitsio import read_truth, truth_path

MODEL_CARD_FILE = "MODEL_CARD.md"


class RunProgress(Protocol):
    """Told about each step of a run: stage name, steps done and in all, a short detail."""

    def __call__(self, stage: str, done: int, total: int, detail: str = "") -> None: ...


class TrainingReport(BaseModel):
    """Everything a finished run produced, saved as `report.json` in the run directory."""

    card: ModelCard
    export: ExportedModel
    history: list[EpochMetrics]
    started_at_epoch: int
    model_card_path: Path
    history_plot_path: Path
    confusion_plot_path: Path
    report_path: Path
    fit_time_s: float


def simulate_if_missing(settings: QualityTrainingSettings, progress: RunProgress) -> None:
    """Write `simulate_per_class` simulated frames per class unless the folders hold enough."""
    per_class = settings.simulate_per_class
    if per_class is None:
        return
    _, labels = list_labelled_frames(settings.data_dir)
    if len(labels) and np.bincount(labels, minlength=len(CLASS_NAMES)).min() >= per_class:
        progress("simulate", 1, 1, f"{len(labels)} frames already in {settings.data_dir}")
        return
    write_mixed_set(
        settings.data_dir,
        per_class,
        settings.simulate_sizes,
        settings.seed,
        jobs=settings.simulate_jobs,
        progress=lambda done, total: progress("simulate", done, total),
    )


def verdict_probabilities(model_probabilities: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """The site's verdict on each frame: the model's probabilities floored by what it measured."""
    return np.stack(
        [
            floored_probabilities(row, CLASS_ORDER[floor])
            for row, floor in zip(model_probabilities, floors, strict=True)
        ]
    )


def _recall_by_simulated_cause(
    data_dir: Path, split: LabelledArrays, probabilities: np.ndarray
) -> list[CauseRecall]:
    """Recall per failing criterion, read from the truth sidecars of simulated frames; empty
    when any frame has none (real frames)."""
    paths = [data_dir / str(name) for name in split.files]
    if not all(truth_path(path).is_file() for path in paths):
        return []
    causes = [
        [name for name, grade in read_truth(path).grades.items() if grade is not QualityLabel.GOOD]
        for path in paths
    ]
    return recall_by_cause(split.labels, probabilities.argmax(axis=1), causes, CLASS_NAMES)


def fit_quality(settings: QualityTrainingSettings, tell: RunProgress) -> FitOutcome:
    """Fit the quality model on the cached splits of `settings.dataset_dir`, on Ray Train or
    (backend `local`) in this process, telling each epoch."""

    def on_epoch(metrics: EpochMetrics) -> None:
        detail = f"val loss {metrics.val_loss:.3f}, val accuracy {metrics.val_accuracy:.1%}"
        tell("train", metrics.epoch + 1, settings.epochs, detail)

    if settings.backend == "ray":
        from training.ray_fit import fit_on_ray  # Ray only where it is used

        return fit_on_ray(settings, on_epoch)
    return train_locally(settings, on_epoch)


@dataclass(frozen=True)
class TestSplitResult:
    """The served model on the test split: the split, the site's verdict probabilities and
    their evaluation against the labels."""

    split: LabelledArrays
    probabilities: np.ndarray
    evaluation: QualityEvaluation


def evaluate_test_split(
    settings: QualityTrainingSettings, served: torch.nn.Module, tell: RunProgress
) -> TestSplitResult:
    """Score the cached test split as a site would (model floored by photometry)."""
    test = load_split(settings.dataset_dir, "test")
    model_probabilities = predict_probabilities(served, test.images)
    probabilities = verdict_probabilities(model_probabilities, test.floors)
    evaluation = evaluate_predictions(test.labels, probabilities, CLASS_NAMES)
    model_accuracy = float(np.mean(model_probabilities.argmax(axis=1) == test.targets))
    tell(
        "evaluate",
        1,
        1,
        f"test accuracy {evaluation.accuracy:.1%} (model alone on its targets "
        f"{model_accuracy:.1%})",
    )
    return TestSplitResult(test, probabilities, evaluation)


def quality_card(
    settings: QualityTrainingSettings,
    data: DatasetSummary,
    fit: FitOutcome,
    tested: TestSplitResult,
    version: int | None,
    model_size_bytes: int,
) -> ModelCard:
    """The model card of a fitted model (`version` None: a candidate not released)."""
    return ModelCard(
        model_name=settings.model_name,
        model_version=version,
        parameters=count_parameters(fit.model),
        model_size_bytes=model_size_bytes,
        preprocess_version=data.preprocess_version,
        data=data,
        hyperparameters=settings.hyperparameters(),
        epochs_run=len(fit.history),
        best_epoch=fit.best_epoch,
        validation_accuracy=fit.history[fit.best_epoch].val_accuracy,
        test=tested.evaluation,
        test_by_cause=_recall_by_simulated_cause(
            settings.data_dir, tested.split, tested.probabilities
        ),
        command=settings.command_line(),
    )


def run_quality_training(
    settings: QualityTrainingSettings, progress: RunProgress | None = None
) -> TrainingReport:
    """The whole run: (simulate,) build the data set, fit on Ray Train, evaluate on the test
    split, export to the model repository (as the next free version unless the settings name
    one; signed when a release key is configured), and write plots, the model card and the
    report. There is no gate here: `training.fleet_run` is the run that promotes only a model
    at least as good as the serving one."""
    tell = progress or (lambda stage, done, total, detail="": None)
    simulate_if_missing(settings, tell)
    data = build_dataset(
        settings.data_dir,
        settings.dataset_dir,
        settings.seed,
        progress=lambda done, total: tell("dataset", done, total),
        jobs=settings.simulate_jobs,
    )
    fit = fit_quality(settings, tell)
    served = PanelSymmetricNet(fit.model).eval()  # what sites run: see training/quality_net.py
    tested = evaluate_test_split(settings, served, tell)
    exported = export_to_repository(
        served,
        settings.model_repository_dir,
        settings.model_version,
        verification_batch=tested.split.images[:8],
        name=settings.model_name,
        sign_with=settings.release_key_seed(),
    )
    tell("export", 1, 1, str(exported.version_dir))
    card = quality_card(
        settings, data, fit, tested, exported.version, exported.torchscript_path.stat().st_size
    )
    card_text = card.to_markdown()
    for folder in (settings.run_dir, exported.version_dir):
        (folder / MODEL_CARD_FILE).write_text(card_text)
    report = TrainingReport(
        card=card,
        export=exported,
        history=fit.history,
        started_at_epoch=fit.started_at_epoch,
        model_card_path=settings.run_dir / MODEL_CARD_FILE,
        history_plot_path=plot_training_history(fit.history, settings.run_dir / "history.png"),
        confusion_plot_path=plot_confusion_matrix(
            tested.evaluation, settings.run_dir / "confusion.png"
        ),
        report_path=settings.report_path,
        fit_time_s=fit.wall_time_s,
    )
    settings.report_path.write_text(report.model_dump_json(indent=2))
    return report

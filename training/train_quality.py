"""Training the quality model: one epoch loop in plain PyTorch, run on Ray Train or locally,
and the whole training run around it.

`run_epochs` is the loop; `training.ray_fit.train_func` runs it in each Ray Train worker and
`train_locally` in the calling process (the `local` backend, and the overhead benchmark's
baseline). `run_quality_training` is one run end to end: data set, fit on the chosen backend,
test-split evaluation, export.
"""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader

from imaging.verdict import CLASS_ORDER, floored_probabilities
from protos import QualityLabel
from training.config import QualityTrainingSettings
from training.dataset import (
    LabelledArrays,
    QualityTensorDataset,
    build_dataset,
    list_labelled_frames,
    load_split,
)
from training.evaluate import (
    CauseRecall,
    EpochMetrics,
    ModelCard,
    evaluate_predictions,
    plot_confusion_matrix,
    plot_training_history,
    predict_probabilities,
    recall_by_cause,
)
from training.export import ExportedModel, export_to_repository
from training.quality_net import CLASS_NAMES, PanelSymmetricNet, QualityNet, count_parameters
from training.simulator.dataset import write_mixed_set
from training.simulator.fitsio import read_truth, truth_path

CHECKPOINT_FILE = "training_state.pt"
EPOCH_LOG_FILE = "epochs.jsonl"
MODEL_CARD_FILE = "MODEL_CARD.md"
SELECTION_METRIC = "val_loss"
OnEpoch = Callable[[EpochMetrics], None]


@dataclass
class TrainingState:
    """Everything a resumed run needs: weights, optimiser, schedule, history and the best epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int = -1

    @property
    def next_epoch(self) -> int:
        """The first epoch still to run."""
        return len(self.history)

    @property
    def best_val_loss(self) -> float:
        """The lowest validation loss so far (infinite before the first epoch)."""
        return self.history[self.best_epoch].val_loss if self.history else float("inf")

    def epochs_without_improvement(self) -> int:
        """Epochs run since the best one."""
        return self.next_epoch - 1 - self.best_epoch

    def record(self, metrics: EpochMetrics) -> None:
        """Append one epoch's metrics and note whether it is the best so far."""
        if metrics.val_loss < self.best_val_loss:
            self.best_epoch = metrics.epoch
        self.history.append(metrics)

    def save(self, directory: Path) -> Path:
        """Write the state into a checkpoint directory."""
        path = directory / CHECKPOINT_FILE
        torch.save(
            {
                "model": _unwrapped(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": [m.model_dump() for m in self.history],
                "best_epoch": self.best_epoch,
            },
            path,
        )
        return path

    def restore(self, directory: Path) -> None:
        """Load the state saved in a checkpoint directory."""
        saved = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        _unwrapped(self.model).load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.history = [EpochMetrics.model_validate(m) for m in saved["history"]]
        self.best_epoch = saved["best_epoch"]


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model itself, without a DistributedDataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def new_training_state(settings: QualityTrainingSettings, model: nn.Module) -> TrainingState:
    """Adam and ReduceLROnPlateau (on validation loss) for a fresh model."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.lr_factor, patience=settings.lr_patience_epochs
    )
    return TrainingState(model=model, optimizer=optimizer, scheduler=scheduler)


def make_loaders(
    settings: QualityTrainingSettings, rank: int = 0
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Train (shuffled, augmented) and validation DataLoaders over the cached splits."""
    train = QualityTensorDataset(
        load_split(settings.dataset_dir, "train"), settings.augment, settings.seed + rank
    )
    val = QualityTensorDataset(load_split(settings.dataset_dir, "val"), augment=False)
    generator = torch.Generator().manual_seed(settings.seed)
    return (
        DataLoader(
            train,
            batch_size=settings.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=settings.loader_workers,
            persistent_workers=settings.loader_workers > 0,
            worker_init_fn=reseed_loader_worker,
            pin_memory=settings.use_gpu,
        ),
        DataLoader(val, batch_size=4 * settings.batch_size, shuffle=False),
    )


def reseed_loader_worker(worker_id: int) -> None:
    """Give a DataLoader worker process its own augmentation stream: each worker starts with a
    copy of the data set, random generator included, and would otherwise repeat the others'
    draws. Torch's per-worker seed derives from the loader's generator, so runs repeat."""
    info = torch.utils.data.get_worker_info()
    if info is not None and isinstance(info.dataset, QualityTensorDataset):
        info.dataset.rng = np.random.default_rng(info.seed)


def _summed_over_workers(values: list[float], device: torch.device) -> list[float]:
    """Sums of per-worker totals across all ranks (the values themselves on one worker)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def _pass_over(
    model: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[float, float]:
    """One pass over a loader (training when an optimiser is given): mean loss and accuracy."""
    model.train(optimizer is not None)
    loss_sum = correct = count = 0.0
    with torch.set_grad_enabled(optimizer is not None):
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += len(labels)
    loss_sum, correct, count = _summed_over_workers([loss_sum, correct, count], device)
    return loss_sum / max(count, 1.0), correct / max(count, 1.0)


def run_epochs(
    state: TrainingState,
    settings: QualityTrainingSettings,
    loaders: tuple[DataLoader[Any], DataLoader[Any]],
    device: torch.device,
    on_epoch: Callable[[EpochMetrics, TrainingState], None],
) -> TrainingState:
    """The epoch loop: train, validate, step the schedule, stop early (no improvement, or the
    time limit passed); `on_epoch` after each."""
    train_loader, val_loader = loaders
    loop_started = time.perf_counter()
    for epoch in range(state.next_epoch, settings.epochs):
        if state.history and (
            state.epochs_without_improvement() >= settings.early_stopping_patience_epochs
        ):
            break
        started = time.perf_counter()
        set_epoch = getattr(getattr(train_loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        train_loss, train_accuracy = _pass_over(state.model, train_loader, device, state.optimizer)
        val_loss, val_accuracy = _pass_over(state.model, val_loader, device, optimizer=None)
        state.scheduler.step(val_loss)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            learning_rate=state.optimizer.param_groups[0]["lr"],
            epoch_time_s=time.perf_counter() - started,
            finished_at_unix_s=time.time(),
        )
        state.record(metrics)
        on_epoch(metrics, state)
        if settings.time_limit_s is not None and (
            time.perf_counter() - loop_started >= settings.time_limit_s
        ):
            break
    return state


@dataclass
class FitOutcome:
    """A finished fit: the best model (eval mode, CPU) and how training went."""

    model: QualityNet
    history: list[EpochMetrics]
    best_epoch: int
    started_at_epoch: int
    wall_time_s: float


def train_locally(settings: QualityTrainingSettings, on_epoch: OnEpoch | None = None) -> FitOutcome:
    """The same loop as `train_func`, in this process with plain torch (no Ray, no checkpoints
    on disk: the best weights are kept in memory). Each epoch's metrics are appended to the
    run's `epochs.jsonl` as a Ray run does, so a long fit can be followed from its folder."""
    started = time.perf_counter()
    torch.set_num_threads(settings.threads_per_worker)
    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if settings.use_gpu else "cpu")
    state = new_training_state(settings, QualityNet(width=settings.width).to(device))
    best_weights: dict[str, torch.Tensor] = {}
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    epoch_log = settings.run_dir / EPOCH_LOG_FILE
    epoch_log.unlink(missing_ok=True)

    def keep_best(metrics: EpochMetrics, state: TrainingState) -> None:
        if state.best_epoch == metrics.epoch:
            best_weights.update(copy.deepcopy(state.model.state_dict()))
        with epoch_log.open("a") as log:
            log.write(metrics.model_dump_json() + "\n")
        if on_epoch is not None:
            on_epoch(metrics)

    run_epochs(state, settings, make_loaders(settings), device, keep_best)
    model = QualityNet(width=settings.width)
    model.load_state_dict(best_weights)
    return FitOutcome(
        model=model.eval(),
        history=state.history,
        best_epoch=state.best_epoch,
        started_at_epoch=0,
        wall_time_s=time.perf_counter() - started,
    )


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


def _simulate_if_missing(settings: QualityTrainingSettings, progress: RunProgress) -> None:
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


def run_quality_training(
    settings: QualityTrainingSettings, progress: RunProgress | None = None
) -> TrainingReport:
    """The whole run: (simulate,) build the data set, fit on Ray Train, evaluate on the test
    split, export to the model repository, and write plots, the model card and the report."""
    tell = progress or (lambda stage, done, total, detail="": None)
    _simulate_if_missing(settings, tell)
    data = build_dataset(
        settings.data_dir,
        settings.dataset_dir,
        settings.seed,
        progress=lambda done, total: tell("dataset", done, total),
        jobs=settings.simulate_jobs,
    )

    def on_epoch(metrics: EpochMetrics) -> None:
        detail = f"val loss {metrics.val_loss:.3f}, val accuracy {metrics.val_accuracy:.1%}"
        tell("train", metrics.epoch + 1, settings.epochs, detail)

    if settings.backend == "ray":
        from training.ray_fit import fit_on_ray  # Ray only where it is used

        fit = fit_on_ray(settings, on_epoch)
    else:
        fit = train_locally(settings, on_epoch)
    test = load_split(settings.dataset_dir, "test")
    served = PanelSymmetricNet(fit.model).eval()  # what sites run: see training/quality_net.py
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
    exported = export_to_repository(
        served,
        settings.model_repository_dir,
        settings.model_version,
        verification_batch=test.images[:8],
        name=settings.model_name,
    )
    tell("export", 1, 1, str(exported.version_dir))
    card = ModelCard(
        model_name=settings.model_name,
        model_version=settings.model_version,
        parameters=count_parameters(fit.model),
        model_size_bytes=exported.torchscript_path.stat().st_size,
        preprocess_version=data.preprocess_version,
        data=data,
        hyperparameters=settings.hyperparameters(),
        epochs_run=len(fit.history),
        best_epoch=fit.best_epoch,
        validation_accuracy=fit.history[fit.best_epoch].val_accuracy,
        test=evaluation,
        test_by_cause=_recall_by_simulated_cause(settings.data_dir, test, probabilities),
        command=settings.command_line(),
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
        confusion_plot_path=plot_confusion_matrix(evaluation, settings.run_dir / "confusion.png"),
        report_path=settings.report_path,
        fit_time_s=fit.wall_time_s,
    )
    settings.report_path.write_text(report.model_dump_json(indent=2))
    return report

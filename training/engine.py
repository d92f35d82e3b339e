"""The epoch engine every training run shares (the quality model, real/bogus): the training
state and its checkpoint, a fresh optimiser and schedule, one pass over a loader, and the epoch
loop with early stopping and a time limit.

It is plain PyTorch over any model and any pair of loaders: `training.ray_fit` runs it in each
Ray Train worker (reporting every epoch with a checkpoint), `training.quality_fit.train_locally`
in the calling process. What differs between runs (data, model, settings) is passed in.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from training.config import TrainingSettings
from training.evaluate import EpochMetrics

CHECKPOINT_FILE = "training_state.pt"
EPOCH_LOG_FILE = "epochs.jsonl"
"""Each epoch's metrics, one JSON line each, in the run directory: a long fit can be followed."""
SELECTION_METRIC = "val_loss"
"""The best epoch (and the checkpoint kept as the model) has the lowest validation loss."""
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


def new_training_state(settings: TrainingSettings, model: nn.Module) -> TrainingState:
    """Adam and ReduceLROnPlateau (on validation loss) for a fresh model."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.lr_factor, patience=settings.lr_patience_epochs
    )
    return TrainingState(model=model, optimizer=optimizer, scheduler=scheduler)


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
    settings: TrainingSettings,
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

"""Fitting the quality model, whatever the backend: its loaders over the cached splits, what a
fit returns (`FitOutcome`), and the `local` backend (`train_locally`).

Both backends run the engine's loop (`training.engine.run_epochs`) over `make_loaders`:
`training.ray_fit.fit_on_ray` in Ray Train workers, `train_locally` in the calling process (the
`local` backend, and the Ray overhead benchmark's baseline). No Ray is imported here.
"""

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from training.config import QualityTrainingSettings
from training.dataset import QualityTensorDataset, load_split
from training.engine import EPOCH_LOG_FILE, OnEpoch, TrainingState, new_training_state, run_epochs
from training.evaluate import EpochMetrics
from training.quality_net import QualityNet


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


@dataclass
class FitOutcome:
    """A finished fit: the best model (eval mode, CPU) and how training went."""

    model: QualityNet
    history: list[EpochMetrics]
    best_epoch: int
    started_at_epoch: int
    wall_time_s: float


def train_locally(settings: QualityTrainingSettings, on_epoch: OnEpoch | None = None) -> FitOutcome:
    """The same loop as `training.ray_fit.train_func`, in this process with plain torch (no Ray,
    no checkpoints on disk: the best weights are kept in memory). Each epoch's metrics are
    appended to the run's `epochs.jsonl` as a Ray run does, so a long fit can be followed from
    its folder."""
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

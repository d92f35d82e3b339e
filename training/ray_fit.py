"""Fitting on Ray Train: what every run's Ray fit uses (a contained Ray session, the trainer,
a worker's resumed training state, reporting each epoch with a checkpoint, loading the best
checkpoint; `training.realbogus.train` uses them too) and the quality model's own Ray fit.

`train_func` is the quality model's Ray Train worker function (`TorchTrainer`): it loads the
cached splits into a torch DataLoader, resumes from `ray.train.get_checkpoint()` after a worker
failure, and reports metrics with a checkpoint every epoch, around the engine's `run_epochs`
loop that `training.quality_fit.train_locally` runs without Ray. `fit_on_ray` starts a
contained local Ray instance (or joins a cluster), fits, and loads the best checkpoint. Ray is
imported only here and in the real/bogus fit, so a quality run with the local backend (and the
site, which never trains) does not need it.
"""

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.callback import UserCallback

from training.config import QualityTrainingSettings, TrainingSettings
from training.engine import (
    EPOCH_LOG_FILE,
    SELECTION_METRIC,
    OnEpoch,
    TrainingState,
    new_training_state,
    run_epochs,
)
from training.evaluate import EpochMetrics
from training.quality_fit import FitOutcome, make_loaders
from training.quality_net import QualityNet

RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
}
"""Quiet, contained Ray runs (../shared/design/PLATFORM.md)."""


def report_to_ray(metrics: EpochMetrics, state: TrainingState) -> None:
    """Report one epoch to Ray Train from every worker; rank 0 attaches the training state as
    the epoch's checkpoint (every rank holds the same state after DDP's all-reduce)."""
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            state.save(Path(directory))
            checkpoint = Checkpoint.from_directory(directory)
        ray.train.report(metrics.model_dump(), checkpoint=checkpoint)


def worker_state(
    settings: TrainingSettings, new_model: Callable[[], torch.nn.Module]
) -> TrainingState:
    """A Ray Train worker's training state: torch threads and seed set, a fresh model (made
    after seeding, so every rank starts alike) prepared for DDP, resumed from the run's last
    checkpoint if there is one."""
    torch.set_num_threads(settings.threads_per_worker)
    torch.manual_seed(settings.seed)
    state = new_training_state(settings, ray.train.torch.prepare_model(new_model()))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state.restore(Path(directory))
    return state


def train_func(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train worker function: resume if a checkpoint exists, train, report every epoch.

    Returns the full history and the epoch this attempt started from (0 unless resumed).
    """
    settings = QualityTrainingSettings.model_validate(config)
    rank = ray.train.get_context().get_world_rank()
    state = worker_state(settings, partial(QualityNet, width=settings.width))
    started_at_epoch = state.next_epoch
    train_loader, val_loader = make_loaders(settings, rank)
    loaders = (
        ray.train.torch.prepare_data_loader(train_loader),
        # Every worker validates on the whole split: exact metrics, the same on every rank.
        ray.train.torch.prepare_data_loader(val_loader, add_dist_sampler=False),
    )
    run_epochs(state, settings, loaders, ray.train.torch.get_device(), report_to_ray)
    return {
        "history": [m.model_dump() for m in state.history],
        "started_at_epoch": started_at_epoch,
    }


def quiet_ray_worker_loggers() -> None:
    """Ray worker setup hook: silence the placement-group cleaner's repeated warning."""
    logging.getLogger(
        "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    ).setLevel(logging.ERROR)


class EpochLogCallback(UserCallback):
    """Appends each reported epoch's metrics to a JSON-lines file (runs in Ray's controller)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps(metrics[0]) + "\n")


def _already_set(names: dict[str, str]) -> dict[str, str]:
    """The variables among `names` that the environment already sets (the user's choice wins)."""
    return {name: os.environ[name] for name in names if name in os.environ}


@contextmanager
def ray_session(settings: TrainingSettings) -> Iterator[None]:
    """A Ray instance for one fit: a contained local one, or the cluster at `ray_address`.

    A local Ray keeps its session (sockets, logs) in a fresh folder under the system temp dir
    (short paths: Unix sockets allow ~100 characters), removed after a clean shutdown and kept,
    for its logs, when the fit failed.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="skyfleet-ray-"))
    environment = {**RAY_ENVIRONMENT, **_already_set(RAY_ENVIRONMENT), "RAY_TMPDIR": str(temp_dir)}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    local = settings.ray_address == "local"
    try:
        ray.init(
            address=settings.ray_address,
            num_cpus=settings.workers * settings.threads_per_worker if local else None,
            include_dashboard=False if local else None,
            runtime_env={"worker_process_setup_hook": quiet_ray_worker_loggers},
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        try:
            yield
        finally:
            ray.shutdown()
    except BaseException:
        logging.getLogger(__name__).error("ray_session_failed logs=%s", temp_dir)
        raise
    else:
        shutil.rmtree(temp_dir, ignore_errors=True)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _follow_epoch_log(path: Path, done: threading.Event, on_epoch: OnEpoch) -> None:
    """Call `on_epoch` for each line appended to the epoch log until `done` is set."""
    seen = 0
    while True:
        finished = done.wait(0.5)
        lines = path.read_text().splitlines() if path.is_file() else []
        for line in lines[seen:]:
            on_epoch(EpochMetrics.model_validate_json(line))
        seen = len(lines)
        if finished:
            return


def trainer_for(
    settings: TrainingSettings,
    train_loop: Callable[[dict[str, Any]], Any] = train_func,
    callbacks: list[UserCallback] | None = None,
) -> ray.train.torch.TorchTrainer:
    """The TorchTrainer of a run: scaling, checkpoints kept, failure tolerance, storage."""
    return ray.train.torch.TorchTrainer(
        train_loop,
        train_loop_config=settings.with_absolute_paths().model_dump(mode="json"),
        scaling_config=ScalingConfig(
            num_workers=settings.workers,
            use_gpu=settings.use_gpu,
            resources_per_worker={"CPU": settings.threads_per_worker},
        ),
        run_config=RunConfig(
            name="fit",
            storage_path=str(settings.ray_storage_dir.absolute()),
            checkpoint_config=CheckpointConfig(
                num_to_keep=settings.checkpoints_to_keep,
                checkpoint_score_attribute=SELECTION_METRIC,
                checkpoint_score_order="min",
            ),
            failure_config=FailureConfig(max_failures=settings.max_failures),
            callbacks=callbacks or [],  # type: ignore[arg-type]  # V2 callbacks; ray's hints are V1's
        ),
    )


def restore_best(
    result: ray.train.Result, settings: TrainingSettings, model: torch.nn.Module
) -> TrainingState:
    """Load the fit's best checkpoint (lowest validation loss) into `model`; its state."""
    best = result.get_best_checkpoint(metric=SELECTION_METRIC, mode="min")
    if best is None:
        raise RuntimeError(f"Ray Train reported no checkpoint (error: {result.error})")
    state = new_training_state(settings, model)
    with best.as_directory() as directory:
        state.restore(Path(directory))
    return state


def fit_on_ray(
    settings: QualityTrainingSettings,
    on_epoch: OnEpoch | None = None,
    train_loop: Callable[[dict[str, Any]], Any] = train_func,
) -> FitOutcome:
    """Fit on Ray Train and return the model of the best checkpoint (lowest validation loss).

    `train_loop` is `train_func` or a function that wraps it (tests inject a failure that way).
    """
    started = time.perf_counter()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    epoch_log = settings.run_dir / EPOCH_LOG_FILE
    epoch_log.unlink(missing_ok=True)
    done = threading.Event()
    follower = threading.Thread(
        target=_follow_epoch_log, args=(epoch_log, done, on_epoch or (lambda _: None))
    )
    with ray_session(settings):
        follower.start()
        try:
            result = trainer_for(settings, train_loop, [EpochLogCallback(epoch_log)]).fit()
        finally:
            done.set()
            follower.join()
    model = QualityNet(width=settings.width)
    state = restore_best(result, settings, model)
    returned = result.return_value  # type: ignore[attr-defined]  # V2's Result; hints are V1's
    history = [EpochMetrics.model_validate(m) for m in returned["history"]]
    return FitOutcome(
        model=model.eval(),
        history=history,
        best_epoch=state.history[-1].epoch,
        started_at_epoch=returned["started_at_epoch"],
        wall_time_s=time.perf_counter() - started,
    )

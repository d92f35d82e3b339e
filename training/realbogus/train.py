"""Fitting the real/bogus CNN with the training runs' shared machinery, and the run's settings.

The epoch loop, optimiser, schedule and checkpointed state (`training.engine`), the Ray session
and `TorchTrainer` set-up (`training.ray_fit`) and the knobs every run has
(`training.config.TrainingSettings`) are the quality model's too (imported, not copied): a
two-class problem runs through the same cross-entropy loop. What is specific here is the data
(labelled triplets split by simulated pair, reals also laid over stars as hosted transients,
classes balanced by oversampling, flips and quarter turns as augmentation) and the model
(`RealBogusNet`), fresh or (`initial_model`) starting from a shipped version's weights to
fine-tune it.
"""

from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import ray.train
import ray.train.torch
import torch
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from torch.utils.data import DataLoader

from imaging.transients.realbogus import RealBogusModel, normalise_triplets
from training.config import TrainingSettings
from training.engine import EPOCH_LOG_FILE, run_epochs
from training.evaluate import EpochMetrics
from training.ray_fit import (
    EpochLogCallback,
    ray_session,
    report_to_ray,
    restore_best,
    trainer_for,
    worker_state,
)
from training.realbogus.dataset import FIRST_REAL_PAIR, Triplets, with_hosted_reals
from training.realbogus.net import RealBogusNet


class RealBogusTrainingSettings(TrainingSettings):
    """A real/bogus training run: the knobs every run has, plus the triplets' validation split,
    hosted reals, the seed of the simulated pairs, the weight of real alerts and a model to
    fine-tune."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_RB_", extra="forbid")
    toml_table: ClassVar[str] = "realbogus"

    epochs: int = Field(default=25, ge=1)
    batch_size: int = Field(default=64, ge=1)
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    hosted_fraction: float = Field(
        default=1.5, ge=0.0, le=4.0, description="Hosted copies per real (laid over stars)."
    )
    data_seed: int = Field(
        default=101,
        ge=0,
        description="Seed of the simulated training pairs: another seed gives a fine-tune pairs "
        "its starting model never saw.",
    )
    real_weight: int = Field(
        default=8,
        ge=0,
        le=50,
        description="Copies of each real training alert (`training.realbogus.real_augment`) "
        "that `skyfleet train realbogus` adds to the simulated triplets; 0: simulations only.",
    )
    initial_model: Path | None = Field(
        default=None,
        description="A model folder (or version folder) whose weights the fit starts from, to "
        "fine-tune it; a freshly initialised network when unset.",
    )

    hold_simulated_recall: bool = Field(
        default=False,
        description="Shift a fine-tune's real logit so that it passes as many of the run's "
        "simulated validation reals at the site's threshold as `initial_model` does "
        "(`training.realbogus.calibrate`). Off by default: the one run that did passed the gate "
        "but let through three times the transient bench's false candidates "
        "(docs/transients.md, *Real alerts*, run 3).",
    )

    @field_validator("initial_model")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Ray workers run in a directory of their own: a relative path is resolved here."""
        return path.resolve() if path is not None else None

    @property
    def triplets_path(self) -> Path:
        """The labelled triplets (`Triplets.save`) this run trains on."""
        return self.data_dir / "triplets.npz"


class TripletDataset(torch.utils.data.Dataset):
    """Normalised triplets and labels; with `augment`, random flips and quarter turns."""

    def __init__(self, triplets: Triplets, augment: bool, seed: int = 0) -> None:
        self.inputs = torch.from_numpy(normalise_triplets(triplets.stamps))
        self.labels = torch.from_numpy(triplets.labels.astype(np.int64))
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.inputs[index]
        if self.augment:
            image = torch.rot90(image, int(self.rng.integers(4)), dims=(1, 2))
            if self.rng.random() < 0.5:
                image = torch.flip(image, dims=(2,))
        return image, int(self.labels[index])


def split_by_pair(triplets: Triplets, val_fraction: float, seed: int) -> tuple[Triplets, Triplets]:
    """Train and validation triplets, no simulated pair in both."""
    pairs = np.unique(triplets.pair)
    rng = np.random.default_rng(seed)
    val_pairs = rng.choice(pairs, size=max(1, round(val_fraction * len(pairs))), replace=False)
    in_val = np.isin(triplets.pair, val_pairs)
    return triplets.select(~in_val), triplets.select(in_val)


def balanced(triplets: Triplets, seed: int) -> Triplets:
    """The triplets with the rarer class repeated until both classes are equally many."""
    rng = np.random.default_rng(seed)
    real, bogus = np.flatnonzero(triplets.labels == 1), np.flatnonzero(triplets.labels == 0)
    rare, common = (real, bogus) if len(real) < len(bogus) else (bogus, real)
    if len(rare) == 0:
        return triplets
    extra = rng.choice(rare, size=len(common) - len(rare), replace=True)
    return triplets.select(np.concatenate([common, rare, extra]))


def make_triplet_loaders(
    settings: RealBogusTrainingSettings, rank: int = 0
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Train (balanced, shuffled, augmented) and validation loaders."""
    train, val = split_by_pair(
        Triplets.load(settings.triplets_path), settings.val_fraction, settings.seed
    )
    rng = np.random.default_rng(settings.seed)
    simulated = train.pair < FIRST_REAL_PAIR  # real stamps are never laid over simulated hosts
    train = Triplets.joined(
        [
            with_hosted_reals(train.select(simulated), rng, settings.hosted_fraction),
            train.select(~simulated),
        ]
    )
    generator = torch.Generator().manual_seed(settings.seed)
    return (
        DataLoader(
            TripletDataset(balanced(train, settings.seed), settings.augment, settings.seed + rank),
            batch_size=settings.batch_size,
            shuffle=True,
            generator=generator,
        ),
        DataLoader(
            TripletDataset(val, augment=False), batch_size=4 * settings.batch_size, shuffle=False
        ),
    )


def initial_network(model_dir: Path | None) -> RealBogusNet:
    """A fresh network, or one holding the weights of the verified model in `model_dir`."""
    network = RealBogusNet()
    if model_dir is not None:
        network.load_state_dict(RealBogusModel.load(model_dir).released.state_dict())
    return network


def train_func(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train worker function: resume from a checkpoint if any, train, report each epoch."""
    settings = RealBogusTrainingSettings.model_validate(config)
    rank = ray.train.get_context().get_world_rank()
    state = worker_state(settings, partial(initial_network, settings.initial_model))
    train_loader, val_loader = make_triplet_loaders(settings, rank)
    loaders = (
        ray.train.torch.prepare_data_loader(train_loader),
        ray.train.torch.prepare_data_loader(val_loader),
    )
    run_epochs(state, settings, loaders, ray.train.torch.get_device(), report_to_ray)
    return {"history": [m.model_dump() for m in state.history]}


def fit_realbogus_on_ray(
    settings: RealBogusTrainingSettings,
) -> tuple[RealBogusNet, list[EpochMetrics]]:
    """Fit on Ray Train; the model of the best checkpoint (lowest validation loss) and history."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    epoch_log = settings.run_dir / EPOCH_LOG_FILE
    epoch_log.unlink(missing_ok=True)
    with ray_session(settings):
        result = trainer_for(settings, train_func, [EpochLogCallback(epoch_log)]).fit()
    model = RealBogusNet()
    restore_best(result, settings, model)
    returned = result.return_value  # type: ignore[attr-defined]  # V2's Result; hints are V1's
    history = [EpochMetrics.model_validate(m) for m in returned["history"]]
    return model.eval(), history

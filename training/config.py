"""Settings of the training runs: what every run shares (`TrainingSettings`) and the quality
model's run (`QualityTrainingSettings`: `SKYFLEET_TRAIN_*`, flags, `[train]` in TOML). The
real/bogus run adds its own knobs in `training.realbogus.train` (`SKYFLEET_RB_*`).

Where a run executes (workers, GPUs, threads) is configuration, not code: the same settings
drive 1 CPU worker on a laptop and 8 GPU workers on a cluster. Every path a run writes is
derived here from `run_dir`, so a run directory is self-contained.
"""

import os
import shlex
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from fleetbus.settings import ServiceSettings

DEFAULT_WIDTH = 8
"""Channels of the quality CNN's first convolution block (`training.quality_net`); each of the
four blocks doubles them (8-16-32-64). Here, not beside the network, so that reading settings
never loads torch."""

_HYPERPARAMETERS = (
    "workers",
    "width",
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "lr_patience_epochs",
    "lr_factor",
    "early_stopping_patience_epochs",
    "augment",
    "seed",
)
"""What shaped the quality model, in the order its model card lists them."""


class TrainingSettings(ServiceSettings):
    """What every training run shares: its folders, where it runs (Ray, workers, GPU, cores),
    the optimiser and its schedule, when it stops, checkpoints and failures, augmentation and
    the seed. Each run subclasses it with its own `env_prefix`, `toml_table` and knobs."""

    data_dir: Path = Field(description="The labelled data the run trains on.")
    run_dir: Path = Field(description="Where the run writes its cache, checkpoints and model.")
    workers: int = Field(default=1, ge=1, description="Ray Train workers (data-parallel ranks).")
    ray_address: str = Field(
        default="local", description='"local" starts a private Ray; else a cluster address.'
    )
    use_gpu: bool = Field(default=False, description="One GPU per worker.")
    cpus_per_worker: int | None = Field(
        default=None, ge=1, description="CPU cores (and torch threads) per worker; None: share all."
    )
    epochs: int = Field(default=40, ge=1)
    time_limit_s: float | None = Field(
        default=None,
        gt=0.0,
        description="Start no new epoch once the fit has run this long (a lease's time budget); "
        "the best epoch so far is kept.",
    )
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    lr_patience_epochs: int = Field(default=3, ge=0, description="ReduceLROnPlateau patience.")
    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    early_stopping_patience_epochs: int = Field(default=8, ge=1)
    augment: bool = Field(
        default=True, description="Augment the train split (each run its own way)."
    )
    seed: int = 42
    max_failures: int = Field(default=1, ge=0, description="Worker-group restarts allowed.")
    checkpoints_to_keep: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _share_cores_by_default(self) -> Self:
        if self.cpus_per_worker is None:
            self.cpus_per_worker = max(1, (os.cpu_count() or 1) // self.workers)
        return self

    def with_absolute_paths(self) -> Self:
        """A copy whose paths hold wherever it is read (Ray workers run in other folders)."""
        return self.model_copy(
            update={"data_dir": self.data_dir.absolute(), "run_dir": self.run_dir.absolute()}
        )

    @property
    def threads_per_worker(self) -> int:
        """Torch intra-op threads per worker: one per reserved core, never more."""
        return self.cpus_per_worker or 1

    @property
    def ray_storage_dir(self) -> Path:
        """Ray Train's checkpoints and results."""
        return self.run_dir / "ray"


class QualityTrainingSettings(TrainingSettings):
    """How to build the data set, train, evaluate and export the quality model."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_TRAIN_", extra="forbid")
    toml_table: ClassVar[str] = "train"

    data_dir: Path = Field(description="Labelled frames in good/, medium/, bad/ folders.")
    simulate_per_class: int | None = Field(
        default=None, ge=1, description="First simulate this many frames per class into data_dir."
    )
    simulate_sizes: list[int] = Field(
        default=[1024],
        min_length=1,
        description="Square frame sides (px) the simulated frames are spread over, so the model "
        "learns every camera size it will see.",
    )
    simulate_jobs: int = Field(
        default=1, ge=1, description="Processes simulating, reading and preprocessing frames."
    )
    backend: Literal["ray", "local"] = Field(
        default="ray",
        description="ray: Ray Train workers; local: the same loop in this process (no Ray).",
    )
    width: int = Field(
        default=DEFAULT_WIDTH,
        ge=1,
        le=256,
        description="Channels of the model's first convolution block (doubled by each of four).",
    )
    loader_workers: int = Field(
        default=0,
        ge=0,
        description="Processes augmenting training batches beside each worker (0: in the "
        "worker itself). A GPU worker needs some, or augmentation on one core starves it.",
    )
    model_name: str = Field(default="quality", pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    model_version: int | None = Field(
        default=None,
        ge=1,
        description="Triton version folder number; None: the next free one in the repository.",
    )
    model_repository: Path | None = Field(
        default=None, description="Model repository to export into; None: run_dir/model_repository."
    )
    release_key_file: Path | None = Field(
        default=None,
        description="A file holding the fleet's release key seed (release.nk, SO...): every "
        "version exported is signed with it (imaging.model_signature). None: unsigned.",
    )

    def with_absolute_paths(self) -> Self:
        """A copy whose paths hold wherever it is read (Ray workers run in other folders)."""
        repository = self.model_repository.absolute() if self.model_repository else None
        key = self.release_key_file.absolute() if self.release_key_file else None
        return (
            super()
            .with_absolute_paths()
            .model_copy(update={"model_repository": repository, "release_key_file": key})
        )

    def release_key_seed(self) -> str | None:
        """The release key's seed from `release_key_file` (None when no key is configured)."""
        if self.release_key_file is None:
            return None
        return self.release_key_file.read_text().strip()

    def hyperparameters(self) -> dict[str, Any]:
        """What shaped the model, for the model card."""
        dumped = self.model_dump(include=set(_HYPERPARAMETERS))
        return {name: dumped[name] for name in _HYPERPARAMETERS}

    def command_line(self) -> str:
        """The `skyfleet train quality` command that repeats this run."""
        flags = [
            f"--data {shlex.quote(str(self.data_dir))}",
            f"--out {shlex.quote(str(self.run_dir))}",
            f"--workers {self.workers}",
            f"--epochs {self.epochs}",
            f"--batch-size {self.batch_size}",
            f"--lr {self.learning_rate:g}",
            f"--width {self.width}",
            f"--seed {self.seed}",
        ]
        if self.simulate_per_class is not None:
            sizes = ",".join(str(side) for side in self.simulate_sizes)
            flags.insert(1, f"--simulate {self.simulate_per_class} --sizes {sizes}")
        if self.backend != "ray":
            flags.append(f"--backend {self.backend}")
        if self.use_gpu:
            flags.append("--gpu")
        if self.loader_workers:
            flags.append(f"--loader-workers {self.loader_workers}")
        if self.time_limit_s is not None:
            flags.append(f"--time-limit {self.time_limit_s:g}")
        if self.model_repository is not None:
            flags.append(f"--repository {shlex.quote(str(self.model_repository))}")
        return "skyfleet train quality " + " ".join(flags)

    @property
    def dataset_dir(self) -> Path:
        """The cached, preprocessed splits."""
        return self.run_dir / "dataset"

    @property
    def model_repository_dir(self) -> Path:
        """Where the model is exported, in Triton model-repository layout."""
        return self.model_repository or self.run_dir / "model_repository"

    @property
    def report_path(self) -> Path:
        """The evaluation report as JSON."""
        return self.run_dir / "report.json"

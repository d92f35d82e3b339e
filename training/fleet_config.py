"""Settings of a fleet retraining run (`skyfleet train fleet`): `FleetTrainingSettings`.

They are the quality run's settings (`SKYFLEET_TRAIN_*`, `[train]` in TOML: workers, epochs,
width, the simulated base set, the release key) plus what a fleet run adds: which model, the
folder of the sites' samples, the model repository the serving model is read from and the
promoted one written to, the held-out set, and the gate's metric and margin. A real/bogus run
takes its fit's own knobs (epochs, learning rate, a model to fine-tune) from `SKYFLEET_RB_*`.
"""

import re
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from training.config import QualityTrainingSettings
from training.gate import QUALITY_METRIC, REALBOGUS_METRIC, GatePolicy

FleetModel = Literal["quality", "realbogus"]
INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_BASE_SIZES = [256, 512, 1024, 2048]


class FleetTrainingSettings(QualityTrainingSettings):
    """One fleet retraining run: data, fit, held-out comparison, gate, release."""

    data_dir: Path = Field(
        default=Path("var/fleet/quality-base"),
        description="The simulated base set of the quality model (simulated here if short).",
    )
    simulate_per_class: int | None = Field(
        default=300, ge=1, description="Frames per class of the simulated base set."
    )
    simulate_sizes: list[int] = Field(default=DEFAULT_BASE_SIZES, min_length=1)
    model_repository: Path | None = Field(
        default=Path("var/model_repository"),
        description="The Triton model repository: the serving model is its highest version of "
        "the model; a promoted candidate becomes the next free one.",
    )
    fleet_model: FleetModel = Field(default="quality", description="Which model to retrain.")
    samples_dir: Path | None = Field(
        default=None, description="A folder of the sites' samples (training.fleet_samples)."
    )
    holdout_dir: Path | None = Field(
        default=None, description="The held-out set's folder; None: var/holdout/<model>."
    )
    holdout_per_class: int = Field(
        default=20, ge=1, description="Quality frames per class and camera, when it is built."
    )
    gate_metric: str | None = Field(
        default=None, description="The gate's primary metric; None: accuracy or roc_auc."
    )
    margin: float = Field(
        default=0.01,
        ge=-1.0,
        le=1.0,
        description="How far below the serving model the candidate may be (primary metric and "
        "each class's recall); negative: the improvement asked for.",
    )
    operator_weight: int = Field(
        default=3, ge=1, description="Times an operator-labelled sample enters training."
    )
    min_verdict_confidence: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Least confidence of a site verdict used as label."
    )
    compare_with_shipped: bool = Field(
        default=True,
        description="With no version in the repository, compare with the model that ships with "
        "Skyfleet (what sites run until a release) and number releases after it.",
    )
    realbogus_data_dir: Path = Field(
        default=Path("var/fleet/realbogus-base"),
        description="Where the simulated real/bogus triplets of the base set are kept.",
    )
    realbogus_pairs: int = Field(
        default=120, ge=1, description="Simulated pairs of the real/bogus base set."
    )
    real_alerts: bool = Field(
        default=True, description="Train real/bogus on the shared real ZTF (Fink) alerts too."
    )

    @property
    def policy(self) -> GatePolicy:
        """The gate's metric and margin for this model."""
        default = QUALITY_METRIC if self.fleet_model == "quality" else REALBOGUS_METRIC
        return GatePolicy(metric=self.gate_metric or default, margin=self.margin)

    @property
    def holdout_folder(self) -> Path:
        """Where the held-out set is read from (and built, the first time)."""
        return self.holdout_dir or Path("var/holdout") / self.fleet_model

    @property
    def record_path(self) -> Path:
        """The run's record."""
        return self.run_dir / "record.json"

    @property
    def fleet_model_dir(self) -> Path:
        """The model's folder in the repository (its numbered versions)."""
        name = self.model_name if self.fleet_model == "quality" else "realbogus"
        return self.model_repository_dir / name

    def quality_settings(self) -> QualityTrainingSettings:
        """The quality run's own settings (what Ray Train's workers validate)."""
        fields = set(QualityTrainingSettings.model_fields)
        return QualityTrainingSettings.model_validate(self.model_dump(include=fields))

    def command_line(self) -> str:
        """The `skyfleet train fleet` command that repeats this run."""
        flags = [
            f"--model {self.fleet_model}",
            f"--out {shlex.quote(str(self.run_dir))}",
            f"--repository {shlex.quote(str(self.model_repository_dir))}",
            f"--margin {self.margin:g}",
        ]
        if self.samples_dir is not None:
            flags.append(f"--samples {shlex.quote(str(self.samples_dir))}")
        if self.fleet_model == "quality":
            flags.append(f"--data {shlex.quote(str(self.data_dir))}")
        flags.append(f"--holdout {shlex.quote(str(self.holdout_folder))}")
        flags.append(f"--gpus {self.workers}" if self.use_gpu else f"--workers {self.workers}")
        return "skyfleet train fleet " + " ".join(flags)


def parse_interval(text: str) -> timedelta:
    """`30s`, `15m`, `24h` or `7d` as a time span (ValueError otherwise)."""
    match = INTERVAL.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not an interval like 30m, 24h or 7d")
    return timedelta(seconds=float(match.group(1)) * UNIT_SECONDS[match.group(2)])

"""One real/bogus training run: simulate pairs, add real alerts, fit on Ray Train, gate, release.

`train_realbogus` is what `skyfleet train realbogus RUN_DIR --pairs N` runs. It simulates `N`
pairs (if RUN_DIR/data/simulated.npz is missing: the simulation is the base), adds the real
ZTF alerts of the training split by object (`training.realbogus.real_split`, each repeated and
varied by `training.realbogus.real_augment`, `SKYFLEET_RB_REAL_WEIGHT` copies), fits on a local
Ray (from `SKYFLEET_RB_INITIAL_MODEL` to fine-tune; with `SKYFLEET_RB_HOLD_SIMULATED_RECALL`,
its real logit shifted so that it passes as many of the run's simulated validation reals at the
threshold in force as the initial model, `training.realbogus.calibrate`), and writes the
candidate to RUN_DIR/candidate.
The candidate is released as the next version of the model repository (the shipped one by
default; reserved and published in one rename, `training.versions`) only if
`training.realbogus.real_gate` promotes it: better on the held-out real alerts and not worse on
a fresh simulated held-out set than the serving version. docs/transients.md gives the runs
behind each shipped version.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.config import TransientSearchSettings
from imaging.transients.realbogus import RealBogusModel, write_realbogus_model
from training.evaluate import EpochMetrics
from training.gate import GateVerdict
from training.realbogus.calibrate import holding_simulated_recall
from training.realbogus.dataset import FIRST_REAL_PAIR, Triplets, simulate_triplets
from training.realbogus.evaluate import RocSummary, evaluate_on_ztf, summarise
from training.realbogus.real_augment import real_triplets
from training.realbogus.real_gate import judge_on_real_and_simulated
from training.realbogus.real_metrics import RealEvaluation, evaluate_on_real_alerts
from training.realbogus.real_split import real_training_alerts, real_validation_alerts
from training.realbogus.train import RealBogusTrainingSettings, fit_realbogus_on_ray
from training.versions import next_free_version, publish_version, reserved_version

HELD_OUT_SEED = 9001
"""Seed of the simulated held-out pairs: far from every training seed, so never trained on."""
HELD_OUT_PAIRS = 20
HELD_OUT_FIRST_INDEX = 10_000
"""Pair numbering of the held-out set starts here, beyond any training set's pairs."""
SIMULATED_FRAME_SIDE_PX = 512
CANDIDATE_DIR = "candidate"
ALL_HELD_OUT = "all held-out"


class RealBogusRunReport(BaseModel):
    """What a run produced: the candidate, whether it was released (and as which version), its
    fit and its scores on unseen data beside the serving model's."""

    version: int | None
    model_dir: Path
    history: list[EpochMetrics]
    real_logit_offset: float
    held_out: RocSummary
    held_out_reals: int
    ztf: RocSummary
    real: dict[str, RealEvaluation]
    serving_real: dict[str, RealEvaluation]
    verdict: GateVerdict

    def summary_rows(self) -> list[tuple[str, str]]:
        """(what, value) rows of the run, as `skyfleet train realbogus` prints them."""
        rows = [
            ("epochs", str(len(self.history))),
            ("real logit offset (simulated recall held)", f"{self.real_logit_offset:.3f}"),
            ("held-out ROC AUC", _figure(self.held_out.roc_auc)),
            ("held-out reals", f"{self.held_out_reals} of {self.held_out.samples}"),
            ("real ZTF alerts ROC AUC", _figure(self.ztf.roc_auc)),
        ]
        for name, new in self.real.items():
            old = self.serving_real[name]
            rows.append(
                (
                    f"{name}: AUC vs drb [95 %] (serving)",
                    f"{_figure(new.roc_auc)} [{_figure(new.roc_auc_low)}, "
                    f"{_figure(new.roc_auc_high)}] ({_figure(old.roc_auc)}); recall drb > 0.9 "
                    f"{_figure(new.recall_sure)} ({_figure(old.recall_sure)})",
                )
            )
        return [*rows, ("gate", self.verdict.reason), ("model", str(self.model_dir))]


def _figure(value: float | None) -> str:
    return "n/a (one class only)" if value is None else f"{value:.3f}"


def next_version(model_dir: Path = SHIPPED_REALBOGUS_MODEL_DIR) -> int:
    """One more than the highest numbered version folder in `model_dir` or version another run
    has reserved (1 if there is none)."""
    return next_free_version(model_dir)


def training_triplets(settings: RealBogusTrainingSettings, pairs: int) -> Triplets:
    """The simulated base (simulated once, cached) and the weighted real training alerts."""
    simulated_path = settings.data_dir / "simulated.npz"
    if not simulated_path.is_file():
        simulate_triplets(pairs, seed=settings.data_seed, size_px=SIMULATED_FRAME_SIDE_PX).save(
            simulated_path
        )
    parts = [Triplets.load(simulated_path)]
    if settings.real_weight > 0:
        rng = np.random.default_rng(settings.seed)
        parts.append(
            real_triplets(real_training_alerts(), settings.real_weight, FIRST_REAL_PAIR, rng)
        )
    return Triplets.joined(parts)


def release(model_dir: Path, repository: Path) -> tuple[int, Path]:
    """Publish the model in `model_dir` as the next free version of `repository`."""
    model = RealBogusModel.load(model_dir)
    with reserved_version(repository) as version:  # never one another run is writing
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=repository))
        try:
            write_realbogus_model(model.released, staging, version=str(version))
            version_dir = publish_version(staging, repository / str(version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return version, version_dir


def train_realbogus(
    run_dir: Path, pairs: int, repository: Path = SHIPPED_REALBOGUS_MODEL_DIR
) -> RealBogusRunReport:
    """Train, gate, maybe release, and evaluate one real/bogus model."""
    settings = RealBogusTrainingSettings(data_dir=run_dir / "data", run_dir=run_dir, workers=1)
    training_triplets(settings, pairs).save(settings.triplets_path)
    threshold = TransientSearchSettings().real_bogus_threshold
    fitted, history = fit_realbogus_on_ray(settings)
    network, offset = holding_simulated_recall(fitted, settings, threshold)
    candidate_dir = write_realbogus_model(network, run_dir / CANDIDATE_DIR, version="candidate")
    candidate, serving = RealBogusModel.load(candidate_dir), RealBogusModel.load(repository)
    held_out = simulate_triplets(
        HELD_OUT_PAIRS,
        seed=HELD_OUT_SEED,
        size_px=SIMULATED_FRAME_SIDE_PX,
        first_index=HELD_OUT_FIRST_INDEX,
    )
    sets = real_validation_alerts()
    real = evaluate_on_real_alerts(candidate, sets, threshold)
    serving_real = evaluate_on_real_alerts(serving, sets, threshold)
    verdict = judge_on_real_and_simulated(
        (candidate, serving),
        (real[ALL_HELD_OUT], serving_real[ALL_HELD_OUT]),
        held_out,
        threshold,
    )
    version, model_dir = (
        release(candidate_dir, repository) if verdict.promoted else (None, candidate_dir)
    )
    return RealBogusRunReport(
        version=version,
        model_dir=model_dir,
        history=history,
        real_logit_offset=offset,
        held_out=summarise(candidate.score(held_out.stamps), held_out.labels == 1),
        held_out_reals=int(np.sum(held_out.labels)),
        ztf=evaluate_on_ztf(candidate),
        real=real,
        serving_real=serving_real,
        verdict=verdict,
    )

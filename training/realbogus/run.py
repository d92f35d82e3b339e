"""One real/bogus training run: simulate pairs, fit on Ray Train, export the next version, evaluate.

`train_realbogus` is what `skyfleet train realbogus RUN_DIR --pairs N` runs. It simulates `N`
pairs (if RUN_DIR/data/triplets.npz is missing), fits on a local Ray, writes the TorchScript model
as the next free version folder of the model repository (the shipped one by default; reserved
and published in one rename, `training.versions`) and evaluates the new version on a fresh
simulated held-out set and on the real ZTF alerts. The other knobs are `SKYFLEET_RB_*`
variables (`RealBogusTrainingSettings`); docs/transients.md gives the runs behind each shipped
version.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.realbogus import RealBogusModel, write_realbogus_model
from training.evaluate import EpochMetrics
from training.realbogus.dataset import simulate_triplets
from training.realbogus.evaluate import RocSummary, evaluate_on_ztf, summarise
from training.realbogus.train import RealBogusTrainingSettings, fit_realbogus_on_ray
from training.versions import next_free_version, publish_version, reserved_version

HELD_OUT_SEED = 9001
"""Seed of the simulated held-out pairs: far from every training seed, so never trained on."""
HELD_OUT_PAIRS = 20
HELD_OUT_FIRST_INDEX = 10_000
"""Pair numbering of the held-out set starts here, beyond any training set's pairs."""
SIMULATED_FRAME_SIDE_PX = 512


class RealBogusRunReport(BaseModel):
    """What a run produced: the version written, its fit and its scores on unseen data."""

    version: int
    model_dir: Path
    history: list[EpochMetrics]
    held_out: RocSummary
    held_out_reals: int
    ztf: RocSummary


def next_version(model_dir: Path = SHIPPED_REALBOGUS_MODEL_DIR) -> int:
    """One more than the highest numbered version folder in `model_dir` or version another run
    has reserved (1 if there is none)."""
    return next_free_version(model_dir)


def train_realbogus(
    run_dir: Path, pairs: int, repository: Path = SHIPPED_REALBOGUS_MODEL_DIR
) -> RealBogusRunReport:
    """Train, export and evaluate one real/bogus model."""
    settings = RealBogusTrainingSettings(data_dir=run_dir / "data", run_dir=run_dir, workers=1)
    if not settings.triplets_path.is_file():
        simulated = simulate_triplets(
            pairs, seed=settings.data_seed, size_px=SIMULATED_FRAME_SIDE_PX
        )
        simulated.save(settings.triplets_path)
    model, history = fit_realbogus_on_ray(settings)
    with reserved_version(repository) as version:  # never one another run is writing
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=repository))
        try:
            write_realbogus_model(model, staging, version=str(version))
            version_dir = publish_version(staging, repository / str(version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    trained = RealBogusModel.load(version_dir)
    held_out = simulate_triplets(
        HELD_OUT_PAIRS,
        seed=HELD_OUT_SEED,
        size_px=SIMULATED_FRAME_SIDE_PX,
        first_index=HELD_OUT_FIRST_INDEX,
    )
    return RealBogusRunReport(
        version=version,
        model_dir=version_dir,
        history=history,
        held_out=summarise(trained.score(held_out.stamps), held_out.labels == 1),
        held_out_reals=int(np.sum(held_out.labels)),
        ztf=evaluate_on_ztf(trained),
    )

"""`python -m training.realbogus RUN_DIR [PAIRS]`: simulate, fit on Ray Train, export, evaluate.

Simulates `PAIRS` pairs (if RUN_DIR/data/triplets.npz is missing), fits on a local Ray, writes
the TorchScript model as the next version folder of `site_agent/models/realbogus/`, and prints
the ROC AUC on a fresh held-out set and on the real ZTF alerts. Other knobs are
`SKYFLEET_RB_*` variables (`RealBogusTrainingSettings`). Version 1 was trained from scratch
(120 pairs), version 2 is version 1 fine-tuned on a sky with galaxies, version 3 is version 2
fine-tuned on 600 pairs of the corrected difference path with star dipoles and stack-like pairs
among them, version 4 is version 3 fine-tuned on 900 such pairs. Version 5, shipped, is version
4 fine-tuned on 1200 pairs of another seed (about 53 min on 2 cores; docs/transients.md):

    SKYFLEET_RB_INITIAL_MODEL=site_agent/models/realbogus/4 SKYFLEET_RB_EPOCHS=8 \\
    SKYFLEET_RB_LEARNING_RATE=2e-4 SKYFLEET_RB_DATA_SEED=202 \\
    python -m training.realbogus RUN_DIR 1200
"""

import sys
from pathlib import Path

import numpy as np

from site_agent.transients.realbogus import DEFAULT_MODEL_DIR, RealBogusModel, write_realbogus_model
from training.realbogus.dataset import simulate_triplets
from training.realbogus.evaluate import evaluate_on_ztf, summarise
from training.realbogus.train import RealBogusTrainingSettings, fit_realbogus_on_ray

HELD_OUT_SEED = 9001


def next_version(model_dir: Path = DEFAULT_MODEL_DIR) -> int:
    """One more than the highest numbered version folder in `model_dir` (1 if there is none)."""
    versions = [int(d.name) for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()]
    return max(versions, default=0) + 1


def main(run_dir: Path, pairs: int) -> None:
    """Train, export and evaluate one real/bogus model."""
    settings = RealBogusTrainingSettings(data_dir=run_dir / "data", run_dir=run_dir, workers=1)
    if not settings.triplets_path.is_file():
        simulate_triplets(pairs, seed=settings.data_seed, size_px=512).save(settings.triplets_path)
    model, history = fit_realbogus_on_ray(settings)
    for epoch in history:
        print(epoch.model_dump_json())
    version = next_version()
    write_realbogus_model(model, DEFAULT_MODEL_DIR / str(version), version=str(version))
    shipped = RealBogusModel.load(DEFAULT_MODEL_DIR)
    held_out = simulate_triplets(20, seed=HELD_OUT_SEED, size_px=512, first_index=10_000)
    print(
        f"version {version} held-out:",
        summarise(shipped.score(held_out.stamps), held_out.labels == 1),
    )
    print("ZTF:", evaluate_on_ztf(shipped))
    print("reals in held-out:", int(np.sum(held_out.labels)))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 120)

"""Holding the simulated reals' recall at the site's threshold after a fine-tune (opt-in): the
logit offset is the smallest that passes as many of the run's validation reals as the starting
model, and it moves scores without reordering them (every ROC AUC stays)."""

import numpy as np
import torch

from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.realbogus import RealBogusModel, write_realbogus_model
from training.realbogus.calibrate import (
    holding_simulated_recall,
    offset_for_recall,
    real_margins,
    with_real_offset,
)
from training.realbogus.dataset import Triplets
from training.realbogus.evaluate import roc_auc
from training.realbogus.net import RealBogusNet
from training.realbogus.train import RealBogusTrainingSettings, initial_network, split_by_pair

THRESHOLD = 0.85
CUT = float(np.log(THRESHOLD / (1 - THRESHOLD)))
DRIFT = 8.0
"""How much lower (logit) the drifted fine-tune scores every stamp than its starting model."""


def test_the_offset_is_the_smallest_that_passes_as_many_reals_as_the_starting_model():
    rng = np.random.default_rng(3)
    reference = rng.normal(CUT + 0.5, 1.0, 400)
    drifted = reference - 0.3  # a fine-tune scoring the same reals a little lower
    wanted = int(np.sum(reference >= CUT))
    offset = offset_for_recall(drifted, reference, THRESHOLD)
    assert int(np.sum(drifted + offset >= CUT)) == wanted
    assert int(np.sum(drifted + offset - 1e-3 >= CUT)) < wanted
    # a candidate that already passes as many is left alone, never pushed down
    assert offset_for_recall(reference + 0.2, reference, THRESHOLD) == 0.0


def test_the_offset_raises_the_scores_of_the_exported_model_and_keeps_their_order(tmp_path):
    torch.manual_seed(0)
    stamps = np.random.default_rng(4).normal(0.0, 1.0, (64, 3, 31, 31)).astype(np.float32)
    labels = np.arange(64) % 2 == 0
    network = RealBogusNet().eval()
    before = RealBogusModel.load(write_realbogus_model(network, tmp_path / "1", "1"))
    margins = real_margins(network, stamps)
    after = RealBogusModel.load(
        write_realbogus_model(with_real_offset(network, 0.7), tmp_path / "2", "2")
    )
    np.testing.assert_allclose(real_margins(network, stamps), margins + 0.7, atol=1e-5)
    old, new = before.score(stamps), after.score(stamps)
    assert np.all(new > old)
    assert roc_auc(new, labels) == roc_auc(old, labels)


def _point_sources(count: int, seed: int) -> np.ndarray:
    """Noise stamps with a point source at the centre of the new and difference stamps."""
    rng = np.random.default_rng(seed)
    stamps = rng.normal(0.0, 1.0, (count, 3, 31, 31)).astype(np.float32)
    yy, xx = np.mgrid[:31, :31] - 15
    for i, amplitude in enumerate(rng.uniform(1.0, 12.0, count)):
        source = amplitude * np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
        stamps[i, 0] += source
        stamps[i, 2] += source
    return stamps


def test_a_run_that_holds_the_simulated_recall_shifts_a_drifted_fine_tune_back(tmp_path):
    """Only when asked: a fine-tune scoring the run's simulated validation reals lower than its
    starting model is shifted until it passes as many of them at the threshold."""
    count = 200
    Triplets(
        _point_sources(count, 5), np.ones(count, dtype=np.int64), np.zeros(count), np.arange(count)
    ).save(tmp_path / "data" / "triplets.npz")
    asked = RealBogusTrainingSettings(
        data_dir=tmp_path / "data",
        run_dir=tmp_path,
        initial_model=SHIPPED_REALBOGUS_MODEL_DIR,
        hold_simulated_recall=True,
    )
    drifted = with_real_offset(initial_network(SHIPPED_REALBOGUS_MODEL_DIR), -DRIFT)
    default = asked.model_copy(update={"hold_simulated_recall": False})
    assert holding_simulated_recall(drifted, default, THRESHOLD)[1] == 0.0
    _, validation = split_by_pair(
        Triplets.load(asked.triplets_path), asked.val_fraction, asked.seed
    )
    starting = real_margins(initial_network(SHIPPED_REALBOGUS_MODEL_DIR), validation.stamps)
    assert (
        0
        < int(np.sum(real_margins(drifted, validation.stamps) >= CUT))
        < int(np.sum(starting >= CUT))
    )
    held, offset = holding_simulated_recall(drifted, asked, THRESHOLD)
    assert 0.0 < offset <= DRIFT + 1e-5
    passed = int(np.sum(real_margins(held, validation.stamps) >= CUT))
    assert passed == int(np.sum(starting >= CUT))

"""The real/bogus model: the shipped one is verified and tells injections from artefacts; a short
Ray Train fit produces a model the site can load."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from imaging.transients.realbogus import (
    SCORE_BATCH,
    SHIPPED_REALBOGUS_MODEL_DIR,
    RealBogusLoadError,
    RealBogusModel,
    normalise_triplets,
    write_realbogus_model,
)
from training.realbogus.dataset import Triplets, simulate_triplets
from training.realbogus.evaluate import evaluate_on_ztf, roc_auc
from training.realbogus.run import next_version
from training.realbogus.train import (
    RealBogusTrainingSettings,
    fit_realbogus_on_ray,
    initial_network,
)


def test_shipped_model_separates_held_out_injections_from_artefacts():
    held_out = simulate_triplets(2, seed=31337, size_px=512, first_index=50_000)
    assert held_out.labels.sum() > 5 and (held_out.labels == 0).sum() > 5
    scores = RealBogusModel.load().score(held_out.stamps)
    assert roc_auc(scores, held_out.labels == 1) > 0.9


def test_many_detections_score_as_they_would_one_by_one():
    stamps = simulate_triplets(2, seed=7, size_px=512).stamps
    many = np.concatenate([stamps] * (SCORE_BATCH // len(stamps) + 2))  # over one batch
    model = RealBogusModel.load()
    scores = model.score(many)
    assert len(scores) == len(many) > SCORE_BATCH
    assert np.allclose(scores[-len(stamps) :], model.score(stamps), atol=1e-6)


def test_stamps_are_normalised_alike_whatever_their_depth_gain_or_edge():
    rng = np.random.default_rng(4)
    stamps = rng.normal(100.0, 5.0, (4, 3, 31, 31))
    stamps[:, :, 15, 15] += 80.0
    deeper = normalise_triplets(stamps * 7.0 - 300.0)  # another gain and sky: the same input
    assert np.allclose(deeper, normalise_triplets(stamps), atol=1e-5)
    edge = stamps.copy()
    edge[0, :, :, :10] = np.nan  # off the image: zeros, the rest still normalised by its noise
    out = normalise_triplets(edge)
    assert np.all(out[0, :, :, :10] == 0.0)
    assert 0.8 < np.std(np.sinh(out[0, :, :, 12:]) * 3.0) < 1.2
    flat = np.full((1, 3, 31, 31), 42.0)
    flat[0, 2] = np.nan
    flat[0, 2, 0, :5] = 1.0  # too few pixels to measure a noise
    assert np.all(normalise_triplets(flat) == 0.0)


def test_shipped_model_ranks_real_ztf_alerts_like_ztf_does():
    summary = evaluate_on_ztf(RealBogusModel.load())
    assert summary.samples == 36 and 0 < summary.positives < 36
    assert summary.roc_auc is not None and summary.roc_auc > 0.5


def test_a_model_whose_file_was_changed_is_refused(tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(SHIPPED_REALBOGUS_MODEL_DIR / RealBogusModel.load().manifest.version, copy)
    with (copy / "model.pt").open("ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(RealBogusLoadError, match="sha256"):
        RealBogusModel.load(copy)


def test_fine_tuning_starts_from_the_shipped_weights_and_exports_a_new_version(tmp_path):
    stamps = simulate_triplets(1, seed=11, size_px=512).stamps[:16]
    network = initial_network(SHIPPED_REALBOGUS_MODEL_DIR).eval()
    scratch = tmp_path / "models"
    loaded = RealBogusModel.load(write_realbogus_model(network, scratch / "1", "1"))
    assert np.allclose(loaded.score(stamps), RealBogusModel.load().score(stamps), atol=1e-6)
    assert next_version(scratch) == 2
    settings = RealBogusTrainingSettings(
        data_dir=tmp_path, run_dir=tmp_path, initial_model=Path("imaging/models/realbogus")
    )
    assert settings.initial_model is not None and settings.initial_model.is_absolute()


def test_roc_auc_is_rank_based_and_needs_both_classes():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert roc_auc(np.array([0.1, 0.2]), np.array([1, 1])) is None


def _toy_triplets(count: int, rng: np.random.Generator) -> Triplets:
    stamps = rng.normal(0, 1, (count, 3, 31, 31)).astype(np.float32)
    labels = np.arange(count) % 2
    yy, xx = np.mgrid[:31, :31]
    blob = 20 * np.exp(-((xx - 15) ** 2 + (yy - 15) ** 2) / 4.0)
    stamps[labels == 1, 0] += blob
    stamps[labels == 1, 2] += blob
    return Triplets(stamps, labels.astype(np.int64), labels * 10.0, np.arange(count) // 4)


@pytest.mark.slow
def test_short_ray_train_fit_exports_a_loadable_model(tmp_path):
    settings = RealBogusTrainingSettings(
        data_dir=tmp_path / "data", run_dir=tmp_path / "run", epochs=2, batch_size=16, workers=1
    )
    _toy_triplets(96, np.random.default_rng(0)).save(settings.triplets_path)
    model, history = fit_realbogus_on_ray(settings)
    assert len(history) == 2
    loaded = RealBogusModel.load(write_realbogus_model(model, tmp_path / "model" / "1", "1"))
    toy = _toy_triplets(16, np.random.default_rng(1))
    assert roc_auc(loaded.score(toy.stamps), toy.labels == 1) > 0.9

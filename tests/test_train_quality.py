"""Training the quality model: evaluation metrics computed right, a real Ray Train run from the
command line to an exported model (as the next free version of its repository), and a run that
resumes from its checkpoint after a worker failure instead of starting again."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from imaging.quality_model import QualityModel, write_model
from skyfleet.cli import app
from tests.quality_models import TinyQualityNet
from training.config import QualityTrainingSettings
from training.dataset import LabelledArrays, QualityTensorDataset, build_dataset
from training.engine import EPOCH_LOG_FILE
from training.evaluate import (
    EpochMetrics,
    evaluate_predictions,
    expected_calibration_error,
    recall_by_cause,
)
from training.quality_fit import reseed_loader_worker, train_locally
from training.ray_fit import fit_on_ray, train_func
from training.simulator.camera import SimCamera
from training.simulator.dataset import write_labelled_set
from training.train_quality import TrainingReport

CLASSES = ("good", "medium", "bad")


def _one_hot_probabilities(predictions: np.ndarray, confidence: float) -> np.ndarray:
    """Probabilities whose top class is `predictions` with `confidence`, the rest shared."""
    probabilities = np.full((len(predictions), 3), (1.0 - confidence) / 2.0)
    probabilities[np.arange(len(predictions)), predictions] = confidence
    return probabilities


def test_precision_recall_and_confusion_count_the_errors_made():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10)
    predictions = labels.copy()
    predictions[[0, 1]] = 1  # two good frames called medium
    predictions[[10, 11, 12]] = [0, 2, 2]  # one medium called good, two called bad
    evaluation = evaluate_predictions(labels, _one_hot_probabilities(predictions, 0.8), CLASSES)
    matrix = np.array(evaluation.confusion_matrix)
    assert matrix.tolist() == [[8, 2, 0], [1, 7, 2], [0, 0, 10]]
    assert evaluation.accuracy == pytest.approx(25 / 30)
    good, medium, bad = evaluation.classes
    assert (good.precision, good.recall) == pytest.approx((8 / 9, 8 / 10))
    assert (medium.precision, medium.recall) == pytest.approx((7 / 9, 7 / 10))
    assert (bad.precision, bad.recall) == pytest.approx((10 / 12, 10 / 10))
    assert [c.support for c in evaluation.classes] == [10, 10, 10]


def test_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy():
    labels = np.zeros(30, dtype=int)
    predictions = np.zeros(30, dtype=int)
    predictions[:4] = 1  # first bin group: 20 frames at 0.9 confidence, 16 right
    predictions[20:25] = 2  # second group: 10 frames at 0.5 confidence, 5 right
    probabilities = np.vstack(
        [
            _one_hot_probabilities(predictions[:20], 0.9),
            _one_hot_probabilities(predictions[20:], 0.5),
        ]
    )
    expected = 20 / 30 * abs(16 / 20 - 0.9) + 10 / 30 * abs(5 / 10 - 0.5)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)


def test_a_perfectly_calibrated_model_has_no_calibration_error():
    labels = np.array([0, 0, 0, 0, 1])
    probabilities = _one_hot_probabilities(np.zeros(5, dtype=int), 0.8)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)


def test_recall_by_cause_counts_a_frame_under_each_criterion_it_fails():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predictions = np.array([0, 1, 1, 0, 0, 2])
    causes = [[], [], ["seeing"], ["transparency"], ["seeing", "transparency"], ["focus"]]
    rows = {
        (r.label, r.cause): (r.recognised, r.frames)
        for r in recall_by_cause(labels, predictions, causes, CLASSES)
    }
    assert rows == {
        ("good", "none"): (1, 2),
        ("medium", "seeing"): (1, 2),
        ("medium", "transparency"): (0, 2),
        ("bad", "focus"): (1, 1),
    }


@pytest.fixture(scope="module")
def tiny_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five small simulated frames per class."""
    folder = tmp_path_factory.mktemp("frames")
    write_labelled_set(folder, 5, SimCamera(width_px=256, height_px=256), seed=2)
    return folder


@pytest.mark.slow
def test_train_command_simulates_fits_on_ray_and_exports_an_evaluated_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative folders must work on Ray's workers too
    run_dir = tmp_path / "run"
    earlier = run_dir / "model_repository" / "quality" / "1"  # an earlier run's export
    write_model(TinyQualityNet().eval(), earlier, name="quality", version="1")
    arguments = ["train", "quality", "--data", "frames", "--simulate", "5", "--out", "run"]
    arguments += ["--workers", "1", "--epochs", "2", "--batch-size", "4"]
    environment = {"COLUMNS": "200", "SKYFLEET_TRAIN_CPUS_PER_WORKER": "1"}
    result = CliRunner().invoke(app, arguments, env=environment)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    for label in CLASSES:
        assert len(list((tmp_path / "frames" / label).glob("*.fits"))) == 5
    report = TrainingReport.model_validate_json((run_dir / "report.json").read_text())
    assert [m.epoch for m in report.history] == [0, 1]
    assert report.card.test.frames == 3
    assert len(report.card.test.classes) == 3
    checkpoints = [p for p in (run_dir / "ray" / "fit").glob("checkpoint_*") if p.is_dir()]
    assert 1 <= len(checkpoints) <= 2
    assert report.export.version == report.card.model_version == 2  # the next free, not 1
    site_model = QualityModel.load(report.export.version_dir.parent)
    assert site_model.manifest.sha256 == report.export.torchscript_sha256
    for path in (report.history_plot_path, report.confusion_plot_path):
        assert path.read_bytes().startswith(b"\x89PNG")
    card = report.model_card_path.read_text()
    assert f"Accuracy {report.card.test.accuracy:.2%}" in card
    assert "skyfleet train quality" in card
    assert "Recall by failing criterion" in card
    assert sum(r.frames for r in report.card.test_by_cause if r.cause == "none") == 1


def fails_once_after_the_first_epoch(config: dict[str, Any]) -> dict[str, Any]:
    """`train_func`, but the first attempt dies right after checkpointing its first epoch."""
    marker = Path(config["run_dir"]) / "failed-once"
    if not marker.exists():
        marker.touch()
        train_func({**config, "epochs": 1})
        raise RuntimeError("simulated worker failure after the first epoch")
    return train_func(config)


@pytest.mark.slow
def test_a_failed_worker_resumes_from_the_last_checkpoint(tiny_frames, tmp_path):
    settings = QualityTrainingSettings(
        data_dir=tiny_frames,
        run_dir=tmp_path / "run",
        epochs=2,
        batch_size=4,
        max_failures=1,
        cpus_per_worker=1,
    )
    build_dataset(settings.data_dir, settings.dataset_dir, settings.seed)
    outcome = fit_on_ray(settings, train_loop=fails_once_after_the_first_epoch)
    assert (settings.run_dir / "failed-once").exists()
    assert outcome.started_at_epoch == 1
    assert [m.epoch for m in outcome.history] == [0, 1]
    reported = [
        EpochMetrics.model_validate(json.loads(line))
        for line in (settings.run_dir / EPOCH_LOG_FILE).read_text().splitlines()
    ]
    assert [m.epoch for m in reported] == [0, 1]
    assert outcome.history[0] == reported[0]


@pytest.mark.slow
def test_a_local_fit_logs_each_epoch_stops_at_its_time_limit_and_has_the_width_asked_for(
    tiny_frames, tmp_path
):
    settings = QualityTrainingSettings(
        data_dir=tiny_frames,
        run_dir=tmp_path / "run",
        backend="local",
        epochs=5,
        batch_size=4,
        width=4,
        time_limit_s=1e-6,
        loader_workers=1,
        cpus_per_worker=1,
    )
    build_dataset(settings.data_dir, settings.dataset_dir, settings.seed)
    outcome = train_locally(settings)
    assert [m.epoch for m in outcome.history] == [0]
    logged = (settings.run_dir / EPOCH_LOG_FILE).read_text().splitlines()
    assert [EpochMetrics.model_validate_json(line) for line in logged] == outcome.history
    first_convolution = outcome.model.features[0][0]
    assert first_convolution.out_channels == 4
    assert outcome.model.features[-1][0].out_channels == 32
    assert "--width 4" in settings.command_line()
    assert "--time-limit 1e-06" in settings.command_line()


def test_loader_processes_augment_with_streams_of_their_own():
    image = np.random.default_rng(3).normal(size=(1, 1, 128, 128)).astype(np.float32)
    arrays = LabelledArrays(
        images=np.repeat(image, 8, axis=0),
        labels=np.zeros(8, dtype=np.int64),
        targets=np.zeros(8, dtype=np.int64),
        floors=np.zeros(8, dtype=np.int64),
        files=np.array(["same"] * 8),
    )
    loader = DataLoader(
        QualityTensorDataset(arrays, augment=True),
        batch_size=1,
        num_workers=2,
        worker_init_fn=reseed_loader_worker,
    )
    augmented = [batch[0].numpy() for batch, _ in loader]
    distinct = {variant.tobytes() for variant in augmented}
    assert len(distinct) == len(augmented)

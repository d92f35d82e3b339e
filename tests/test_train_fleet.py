"""Fleet retraining: the sites' sample files, the fixed held-out set, version numbers that never
collide, the schedule, and two real runs on Ray Train (2 workers, a tiny set): one that the
gate promotes for the right reason and one that it rejects for the right reason, each leaving
its record."""

import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from fleetbus.identity import new_release_key
from imaging.model_signature import verify_version
from imaging.preprocess import INPUT_SHAPE, PREPROCESS_VERSION
from imaging.quality_model import QualityModel, write_model
from protos import FrameIdentity
from skyfleet.cli import app
from tests.quality_models import TinyQualityNet
from training.export import ExportError, export_to_repository
from training.fleet_config import FleetTrainingSettings
from training.fleet_record import DataCounts, FleetRunRecord, file_sha256
from training.fleet_run import run_fleet_training
from training.fleet_samples import FleetSample, read_fleet_samples, write_fleet_sample
from training.gate import GatePolicy, ModelScores, judge
from training.holdout import (
    ARRAYS_FILE,
    HoldoutCamera,
    HoldoutError,
    HoldoutInfo,
    build_quality_holdout,
    load_quality_holdout,
)
from training.simulator.camera import SimCamera
from training.simulator.dataset import write_labelled_set
from training.versions import VersionTakenError, publish_version, reserved_version

TINY_CAMERAS = (
    HoldoutCamera(side_px=256, pixel_scale_arcsec=1.0, seed=7_770_256),
    HoldoutCamera(side_px=512, pixel_scale_arcsec=0.8, seed=7_770_512),
)
LABELLED_AT = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
TINY_RUN = {
    "SKYFLEET_TRAIN_EPOCHS": "2",
    "SKYFLEET_TRAIN_BATCH_SIZE": "4",
    "SKYFLEET_TRAIN_WIDTH": "4",
    "SKYFLEET_TRAIN_CPUS_PER_WORKER": "1",
    "SKYFLEET_TRAIN_SIMULATE_PER_CLASS": "5",
    "SKYFLEET_TRAIN_SIMULATE_SIZES": "[256]",
}
"""Two 1-core Ray workers, 2 epochs of a width-4 net on 15 frames: the pipeline, not the model."""


@pytest.fixture(scope="module")
def base_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated base set: five small frames per class."""
    folder = tmp_path_factory.mktemp("base") / "frames"
    write_labelled_set(folder, 5, SimCamera(width_px=256, height_px=256), seed=2)
    return folder


@pytest.fixture(scope="module")
def holdout_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny quality held-out set: two frames per class on two cameras."""
    folder = tmp_path_factory.mktemp("holdout")
    build_quality_holdout(folder, per_class=2, cameras=TINY_CAMERAS)
    return folder


def _sample(sha: str, label: str, source: str, *, confidence: float = 0.95, **extra) -> FleetSample:
    fields = {
        "site_id": "teide",
        "frame": FrameIdentity(
            file_name=f"{sha[:6]}.fits", sha256=sha, width_px=1024, height_px=1024
        ),
        "tensor_file": f"{sha[:12]}-{source}.npy",
        "input_version": PREPROCESS_VERSION,
        "verdict": label if source == "site-verdict" else "good",
        "confidence": confidence,
        "label": label,
        "label_source": source,
        "labelled_at": LABELLED_AT,
    }
    return FleetSample.model_validate(fields | extra)


def _write_samples(folder: Path) -> None:
    """Operators' labels and confident verdicts from two sites, and some that cannot be used."""
    rng = np.random.default_rng(5)

    def tensor() -> np.ndarray:
        return rng.normal(size=INPUT_SHAPE).astype(np.float32)

    write_fleet_sample(folder / "teide", _sample("a" * 64, "bad", "operator"), tensor())
    write_fleet_sample(folder / "teide", _sample("a" * 64, "good", "site-verdict"), tensor())
    write_fleet_sample(folder / "teide", _sample("b" * 64, "medium", "site-verdict"), tensor())
    write_fleet_sample(
        folder / "la-silla",
        _sample("c" * 64, "good", "operator", site_id="la-silla", labelled_by="olga"),
        tensor(),
    )
    write_fleet_sample(
        folder / "teide", _sample("d" * 64, "good", "site-verdict", confidence=0.6), tensor()
    )
    write_fleet_sample(
        folder / "teide", _sample("e" * 64, "bad", "operator"), np.zeros((1, 64, 64))
    )
    stale = _sample("f" * 64, "bad", "operator", input_version="mosaic-asinh-0")
    write_fleet_sample(folder / "teide", stale, tensor())
    (folder / "teide" / "garbage.json").write_text("{}")


def test_samples_are_one_per_frame_an_operators_label_first_and_the_unusable_are_said_why(
    tmp_path,
):
    _write_samples(tmp_path)
    samples = read_fleet_samples(tmp_path, "quality", min_verdict_confidence=0.9)
    assert len(samples) == 3
    by_key = dict(zip(samples.keys, samples.label_sources, strict=True))
    assert by_key == {"a" * 64: "operator", "b" * 64: "site-verdict", "c" * 64: "operator"}
    assert samples.labels.tolist() == [
        2,
        1,
        0,
    ]  # bad (the operator's, not the verdict), medium, good
    assert samples.counts("sites") == {"la-silla": 1, "teide": 2}
    assert samples.tensors.shape == (3, *INPUT_SHAPE)
    reasons = sorted(skipped.reason for skipped in samples.skipped)
    assert len(reasons) == 4
    assert any("made with input 'mosaic-asinh-0'" in reason for reason in reasons)
    assert any("confidence 0.60, below 0.90" in reason for reason in reasons)
    assert any("tensor shape [1, 64, 64], expected [1, 128, 128]" in reason for reason in reasons)
    assert any("not a fleet sample" in reason for reason in reasons)
    assert len(read_fleet_samples(tmp_path, "realbogus")) == 0
    with pytest.raises(ValueError, match="must be that verdict"):
        _sample("a" * 64, "bad", "site-verdict", verdict="good")


def test_the_held_out_set_is_the_same_set_wherever_it_is_built_and_refused_if_changed(
    holdout_dir, tmp_path
):
    first = load_quality_holdout(holdout_dir)
    assert first.info.samples == 12
    assert first.info.by_source == {"sim-256px-1as": 6, "sim-512px-0.8as": 6}
    assert first.info.by_label == {"bad": 4, "good": 4, "medium": 4}
    assert first.info.version == "quality-holdout-1/2-per-class/256@1,512@0.8"
    again = build_quality_holdout(tmp_path / "again", per_class=2, cameras=TINY_CAMERAS)
    assert again.info.sha256 == first.info.sha256
    with np.load(tmp_path / "again" / ARRAYS_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["labels"][0] = (arrays["labels"][0] + 1) % 3
    np.savez_compressed(tmp_path / "again" / ARRAYS_FILE, **arrays)
    with pytest.raises(HoldoutError, match="changed on disk"):
        load_quality_holdout(tmp_path / "again")


def test_racing_runs_never_take_the_same_version(tmp_path):
    model_dir = tmp_path / "quality"
    (model_dir / "3").mkdir(parents=True)
    racers = 8
    start = threading.Barrier(racers)
    taken: list[int] = []
    lock = threading.Lock()

    def release() -> None:
        start.wait()
        with reserved_version(model_dir) as version:
            staging = model_dir / f".staging-{threading.get_ident()}"
            staging.mkdir()
            (staging / "model.pt").write_bytes(b"weights")
            publish_version(staging, model_dir / str(version))
            with lock:
                taken.append(version)

    threads = [threading.Thread(target=release) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(4, 4 + racers))
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(str(v) for v in [3, *taken])
    with reserved_version(model_dir) as held:
        with (
            pytest.raises(VersionTakenError, match="being released by another run"),
            reserved_version(model_dir, held),
        ):
            pass
        with reserved_version(model_dir) as next_one:
            assert next_one == held + 1  # a held number is skipped, never shared
    with (
        pytest.raises(VersionTakenError, match="never overwritten"),
        reserved_version(model_dir, 3),
    ):
        pass


def test_an_export_without_a_version_takes_the_next_free_one_signed_before_it_appears(tmp_path):
    seed, public_key = new_release_key()
    repository = tmp_path / "repository"
    write_model(TinyQualityNet().eval(), repository / "quality" / "1", name="quality", version="1")
    batch = np.random.default_rng(1).normal(size=(2, *INPUT_SHAPE)).astype(np.float32)
    exported = export_to_repository(
        TinyQualityNet(seed=1).eval(), repository, None, batch, sign_with=seed
    )
    assert exported.version == 2 and exported.version_dir.name == "2"
    verify_version(exported.version_dir, public_key)
    assert QualityModel.load(repository / "quality", public_key).manifest.version == "2"
    with pytest.raises(ExportError, match="never overwritten"):
        export_to_repository(TinyQualityNet().eval(), repository, 2, batch)


class AlwaysWrong(nn.Module):
    """A deliberately bad quality model: it finds each held-out frame by its pixel sum and
    answers a class the frame is not (bad for good and medium frames, good for bad ones)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__()
        sums = images.reshape(len(images), -1).astype(np.float64).sum(axis=1)
        self.register_buffer("sums", torch.from_numpy(sums))
        self.register_buffer("wrong", torch.from_numpy(np.where(labels == 2, 0, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sums = x.flatten(1).to(torch.float64).sum(dim=1)
        nearest = (sums[:, None] - self.sums[None, :]).abs().argmin(dim=1)
        return nn.functional.one_hot(self.wrong[nearest], 3).to(x.dtype) * 20.0 - 10.0


def _check_artifacts(record: FleetRunRecord, run_dir: Path) -> None:
    assert record.artifacts
    for artifact in record.artifacts:
        path = Path(artifact.path)
        path = path if path.is_absolute() else run_dir / path
        assert file_sha256(path) == artifact.sha256, artifact.path


@pytest.mark.slow
def test_a_candidate_better_than_the_serving_model_is_released_signed_as_the_next_version(
    tmp_path, monkeypatch, base_frames, holdout_dir
):
    holdout = load_quality_holdout(holdout_dir)
    repository = tmp_path / "repository"
    bad = AlwaysWrong(holdout.images, holdout.labels).eval()
    write_model(bad, repository / "quality" / "1", name="quality", version="1")
    seed, public_key = new_release_key()
    (tmp_path / "release.nk").write_text(seed)
    _write_samples(tmp_path / "samples")
    for name, value in TINY_RUN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SKYFLEET_TRAIN_RELEASE_KEY_FILE", str(tmp_path / "release.nk"))
    arguments = ["train", "fleet", "--model", "quality", "--out", str(tmp_path / "run")]
    arguments += ["--repository", str(repository), "--samples", str(tmp_path / "samples")]
    arguments += ["--data", str(base_frames), "--holdout", str(holdout_dir), "--workers", "2"]
    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    record = FleetRunRecord.model_validate_json((tmp_path / "run" / "record.json").read_text())
    assert record.outcome == "promoted", record.reason
    assert record.reason.startswith("promoted: accuracy")
    assert record.serving is not None and record.serving.version == 1
    assert record.verdict.serving is not None
    assert (
        record.verdict.serving.metrics["accuracy"] <= record.verdict.candidate.metrics["accuracy"]
    )
    assert record.released_version == 2 and record.signed
    assert QualityModel.load(repository / "quality", public_key).manifest.version == "2"
    assert record.holdout.sha256 == holdout.info.sha256
    assert record.data.by_source == {"simulated": 12, "fleet": 3}
    assert record.data.by_site == {"simulated": 12, "la-silla": 1, "teide": 2}
    assert record.data.by_label_source == {"simulation": 12, "operator": 2, "site-verdict": 1}
    assert len(record.data.skipped) == 4
    assert {row.name for row in record.metrics} >= {"accuracy", "recall good", "recall bad"}
    assert "candidate promoted" in result.output
    _check_artifacts(record, tmp_path / "run")
    assert "## The gate" in (tmp_path / "run" / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_a_candidate_worse_than_the_shipped_model_is_kept_aside_with_the_reason(
    tmp_path, base_frames, holdout_dir
):
    settings = FleetTrainingSettings(
        epochs=2,
        batch_size=4,
        width=4,
        cpus_per_worker=1,
        simulate_per_class=5,
        simulate_sizes=[256],
        data_dir=base_frames,
        run_dir=tmp_path / "run",
        model_repository=tmp_path / "repository",
        holdout_dir=holdout_dir,
        workers=2,
    )
    record = run_fleet_training(settings)
    assert record.outcome == "rejected"
    assert record.serving is not None and record.serving.source == "shipped"
    assert record.reason.startswith("rejected: accuracy"), record.reason
    assert "below the serving model's" in record.reason
    rejected = tmp_path / "run" / "rejected"
    assert (rejected / "REJECTED.txt").read_text().strip() == record.reason
    assert QualityModel.load(rejected).manifest.version == "candidate"
    assert not (tmp_path / "repository" / "quality").exists() or not [
        p for p in (tmp_path / "repository" / "quality").iterdir() if p.name.isdigit()
    ]
    assert record.released_version is None and record.rejected_dir == str(rejected)
    _check_artifacts(record, tmp_path / "run")


def _canned_record(run_dir: Path) -> FleetRunRecord:
    """A promoted run's record, as a stand-in run returns it."""
    scores = ModelScores(model="candidate", samples=3, metrics={"accuracy": 0.9}, recall={})
    verdict = judge(scores, None, GatePolicy(metric="accuracy"))
    now = datetime.now(UTC)
    holdout = HoldoutInfo(
        model="quality",
        version="v",
        sha256="0" * 64,
        samples=3,
        input_version=PREPROCESS_VERSION,
        by_source={},
        by_label={},
    )
    counts = DataCounts(
        by_source={}, by_site={}, by_label={}, by_label_source={}, operator_weight=3
    )
    return FleetRunRecord(
        run_id="canned",
        model="quality",
        outcome="promoted",
        reason=verdict.reason,
        command="skyfleet train fleet",
        started_at=now,
        finished_at=now,
        timings_s={},
        data=counts,
        holdout=holdout,
        serving=None,
        released_version=7,
        released_dir=str(run_dir),
        signed=False,
        rejected_dir=None,
        metrics=verdict.comparison,
        verdict=verdict,
        artifacts=[],
    )


def test_the_schedule_runs_again_and_again_with_a_line_each_until_interrupted(
    tmp_path, monkeypatch
):
    calls: list[Path] = []

    def fake_run(settings, progress=None, command=None):
        calls.append(settings.run_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return _canned_record(settings.run_dir)

    monkeypatch.setattr("training.fleet_run.run_fleet_training", fake_run)
    result = CliRunner().invoke(
        app, ["train", "fleet", "--out", str(tmp_path), "--every", "0.2s"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert [path.parent for path in calls] == [tmp_path, tmp_path]
    assert calls[0] != calls[1]  # each run its own folder, even within one second
    assert "quality: promoted as v7, accuracy 0.9000, no serving model" in result.output
    assert "Stopped after 1 run(s)." in result.output
    refused = CliRunner().invoke(app, ["train", "fleet", "--out", str(tmp_path), "--every", "soon"])
    assert refused.exit_code == 2
    assert "not an interval like 30m, 24h or 7d" in refused.output

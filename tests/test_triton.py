"""Serving the quality model through a real tritonserver, and scoring through it from a site."""

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fleetbus.server import free_port
from imaging.fits_reader import read_frame
from imaging.preprocess import preprocess_frame
from imaging.quality_model import MODEL_FILE, ModelLoadError, QualityModel, write_model
from site_agent.triton_scorer import FallbackPredictor, TritonPredictor, TritonUnavailableError
from skyfleet.cli import app
from tests.conftest import REAL_DATA, REPO_ROOT, SKYFLEET
from training.quality_net import QualityNet
from training.triton.repository import ServingModel, build_serving_repository
from training.triton.server import TritonServer, TritonServerConfig, TritonServerError

REAL_FRAMES = (
    "decam-sfft/DEC-OBS04a.mini.fits",
    "decam-sfft/DEC-OBS04b.mini.fits",
    "decam-sfft/DEC-OBS18a.mini.fits",
    "decam-sfft/Stack-DEC-OBS04.fits",
    "sep/image.fits",
    "satellite-streak/long.fits",
    "raw-ccd/a8280271.fits",
)


def _export_model(model_dir: Path) -> Path:
    """An exported quality model (the real network, seeded weights) in Triton's layout."""
    torch.manual_seed(7)
    write_model(QualityNet().eval(), model_dir / "1", name="quality", version="1")
    return model_dir


def _serve(served: ServingModel, work_dir: Path) -> TritonServer:
    config = TritonServerConfig.on_free_ports(served.repository, work_dir, (served.name,))
    return TritonServer(config)


def _stub_processes(repository: Path) -> set[int]:
    """Pids of Triton python-backend stubs serving models from `repository`."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_text()
            except OSError:
                continue
            if "triton_python_backend_stub" in cmdline and str(repository) in cmdline:
                pids.add(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export_model(tmp_path_factory.mktemp("export") / "quality")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Real frames, preprocessed as a site does: a batch [N, 1, 128, 128]."""
    return np.stack([preprocess_frame(read_frame(REAL_DATA / f).data) for f in REAL_FRAMES])


@pytest.fixture(scope="module")
def served(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    return build_serving_repository(exported_model, tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def triton(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running tritonserver serving the exported model; yields its gRPC address."""
    with _serve(served, tmp_path_factory.mktemp("triton")) as server:
        yield server.grpc_url


def test_serving_repository_has_triton_layout(served: ServingModel, exported_model: Path):
    version_dir = served.model_dir / "1"
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "manifest.json",
        "model.pt",
        "model.py",
    ]
    assert (version_dir / MODEL_FILE).read_bytes() == (
        exported_model / "1" / MODEL_FILE
    ).read_bytes()
    config = (served.model_dir / "config.pbtxt").read_text()
    assert 'backend: "python"' in config
    assert 'name: "input"' in config and 'name: "probabilities"' in config


def test_triton_serves_the_model_with_its_contract(triton: str, frames: np.ndarray):
    predictor = TritonPredictor(triton)
    assert predictor.is_ready()
    probabilities = predictor.predict(frames)
    assert probabilities.shape == (len(frames), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_triton_scores_equal_in_process_scores(
    triton: str, exported_model: Path, frames: np.ndarray
):
    in_process = QualityModel.load(exported_model).predict(frames)
    through_triton = TritonPredictor(triton).predict(frames)
    np.testing.assert_allclose(through_triton, in_process, atol=1e-5)
    # One frame at a time (Triton batches dynamically) gives the same answers.
    singles = np.concatenate([TritonPredictor(triton).predict(f[np.newaxis]) for f in frames])
    np.testing.assert_allclose(singles, in_process, atol=1e-5)


@pytest.mark.slow
def test_fallback_scores_in_process_while_triton_is_down(
    served: ServingModel,
    exported_model: Path,
    frames: np.ndarray,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="site_agent.triton_scorer")
    now = [0.0]
    local = QualityModel.load(exported_model)
    expected = local.predict(frames)
    server = _serve(served, tmp_path)
    with server:
        fallback = FallbackPredictor(
            TritonPredictor(server.grpc_url, timeout_s=20.0),
            local,
            retry_interval_s=30.0,
            clock=lambda: now[0],
        )
        np.testing.assert_allclose(fallback.predict(frames[:2]), expected[:2], atol=1e-5)
        assert fallback.last_path == "triton", caplog.text
    scored = [fallback.predict(frames[i : i + 1]) for i in range(len(frames))]
    np.testing.assert_allclose(np.concatenate(scored), expected, atol=1e-5)
    assert fallback.last_path == "in_process"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "site_agent.triton_scorer"
    ]
    assert len(warnings) == 1, warnings
    assert f"Triton at {server.grpc_url} unavailable" in warnings[0]
    assert "scoring in process" in warnings[0]

    with server:
        fallback.predict(frames[:1])
        assert fallback.last_path == "in_process", "retried Triton before the retry interval"
        now[0] += 30.0
        np.testing.assert_allclose(fallback.predict(frames), expected, atol=1e-5)
        assert fallback.last_path == "triton", caplog.text
        assert "is back; scoring through Triton" in caplog.text


def test_export_whose_sha256_does_not_match_its_manifest_is_not_served(tmp_path: Path):
    model_dir = _export_model(tmp_path / "quality")
    with (model_dir / "1" / MODEL_FILE).open("ab") as weights:
        weights.write(b"tampered")
    with pytest.raises(ModelLoadError, match="sha256"):
        build_serving_repository(model_dir, tmp_path / "serving")
    assert not (tmp_path / "serving" / "quality").exists()


def test_cli_refuses_to_serve_a_tampered_export(tmp_path: Path):
    model_dir = _export_model(tmp_path / "quality")
    with (model_dir / "1" / MODEL_FILE).open("ab") as weights:
        weights.write(b"tampered")
    command = ["triton", "serve", "--model-dir", str(model_dir), "--work-dir", str(tmp_path)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "cannot serve" in message and "does not match the manifest" in message


def test_triton_refuses_a_served_model_that_does_not_match_its_manifest(tmp_path: Path):
    served = build_serving_repository(_export_model(tmp_path / "quality"), tmp_path / "serving")
    weights = served.model_dir / "1" / MODEL_FILE
    torch.manual_seed(8)
    torch.jit.script(QualityNet().eval()).save(str(weights))
    with pytest.raises(TritonServerError, match="does not match the manifest"):
        _serve(served, tmp_path / "triton").start()


@pytest.mark.slow
def test_cli_serves_until_interrupted_and_leaves_no_process(exported_model: Path, tmp_path: Path):
    command = [str(SKYFLEET), "triton", "serve", "--model-dir", str(exported_model)]
    command += ["--grpc-port", "0", "--http-port", "0", "--work-dir", str(tmp_path), "--cpu"]
    cli = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        cwd=REPO_ROOT,
    )
    try:
        output = ""
        assert cli.stdout is not None
        for line in cli.stdout:
            output += line
            if "Ctrl-C" in line:
                break
        assert "Triton is serving" in output, output
        grpc_url = output.split("gRPC (site agents)")[1].split()[1]
        server_pid = int(output.split(" pid ")[1].split()[1])
        assert TritonPredictor(grpc_url).is_ready()
        assert _stub_processes(tmp_path), "no python-backend stub serving the model"
        cli.send_signal(signal.SIGINT)
        rest, _ = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, output + rest
    assert "no process left behind" in rest
    deadline = time.monotonic() + 5.0
    while _stub_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _stub_processes(tmp_path)
    assert not Path(f"/proc/{server_pid}").exists()
    assert not TritonPredictor(grpc_url, timeout_s=1.0).is_ready()


def test_predictor_says_which_triton_is_unavailable(frames: np.ndarray):
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(TritonUnavailableError, match=f"Triton at {url} unavailable"):
        TritonPredictor(url, timeout_s=2.0).predict(frames[:1])

"""Quality scoring through Triton (gRPC, python backend) against in-process TorchScript.

Batch-1 latency (p50/p95 over many single-frame requests, what a site scoring frames as they
arrive sees) and batch-32 throughput, on real frames preprocessed as a site does. Serves the
shipped model in `imaging/models/quality/` when it is there, else a freshly exported
QualityNet with seeded weights (same architecture, same cost). Both sides run torch with
`TORCH_THREADS` intra-op threads: on a small shared CPU two torch thread pools spinning against
each other (and against other work) would measure contention, not serving.
"""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from imaging.fits_reader import read_frame
from imaging.preprocess import preprocess_frame
from imaging.quality_model import ModelLoadError, QualityModel, model_version_dir, write_model
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from site_agent.triton_scorer import TritonPredictor
from training.quality_net import QualityNet
from training.triton.repository import build_serving_repository
from training.triton.server import TritonServer, TritonServerConfig

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
REAL_FRAMES = ("sep/image.fits", "satellite-streak/long.fits", "decam-sfft/DEC-OBS04a.mini.fits")
SINGLE_REQUESTS = 200
BATCH_SIZE = 32
BATCH_ROUNDS = 10
WARM_UP = 10
TORCH_THREADS = 1


def _model_dir(scratch: Path) -> Path:
    try:
        model_version_dir(SHIPPED_QUALITY_MODEL_DIR)
        return SHIPPED_QUALITY_MODEL_DIR
    except ModelLoadError:
        torch.manual_seed(0)
        write_model(QualityNet().eval(), scratch / "quality" / "1", name="quality", version="1")
        return scratch / "quality"


def _frames() -> np.ndarray:
    frames = [preprocess_frame(read_frame(REAL_DATA / name).data) for name in REAL_FRAMES]
    return np.stack([frames[i % len(frames)] for i in range(BATCH_SIZE)])


def _latencies_ms(predict: Callable[[np.ndarray], np.ndarray], frames: np.ndarray) -> np.ndarray:
    for i in range(WARM_UP):
        predict(frames[i % len(frames)][np.newaxis])
    timings = []
    for i in range(SINGLE_REQUESTS):
        started = time.perf_counter()
        predict(frames[i % len(frames)][np.newaxis])
        timings.append(time.perf_counter() - started)
    return np.array(timings) * 1e3


def _images_per_s(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> float:
    predict(batch)
    started = time.perf_counter()
    for _ in range(BATCH_ROUNDS):
        predict(batch)
    return BATCH_ROUNDS * len(batch) / (time.perf_counter() - started)


def main() -> None:
    console = Console()
    frames = _frames()
    threads_before, omp_before = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(TORCH_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(TORCH_THREADS)  # inherited by Triton's backend stub
    try:
        _run(console, frames)
    finally:
        torch.set_num_threads(threads_before)
        if omp_before is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = omp_before


def _run(console: Console, frames: np.ndarray) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as scratch_name:
        scratch = Path(scratch_name)
        model_dir = _model_dir(scratch)
        local = QualityModel.load(model_dir)
        served = build_serving_repository(model_dir, scratch / "repository")
        config = TritonServerConfig.on_free_ports(served.repository, scratch / "triton")
        started = time.perf_counter()
        with TritonServer(config) as server:
            ready_s = time.perf_counter() - started
            remote = TritonPredictor(server.grpc_url, timeout_s=30.0)
            paths = {"Triton gRPC (python backend)": remote.predict, "in-process": local.predict}
            rows = [
                (name, _latencies_ms(predict, frames), _images_per_s(predict, frames))
                for name, predict in paths.items()
            ]
            remote.close()
    table = Table(
        title=f"Quality scoring: {local.manifest.name} {local.manifest.version} "
        f"({served.instance_kind}, torch {torch.__version__}, {TORCH_THREADS} intra-op thread each)"
    )
    for column in ("path", "batch-1 p50 ms", "batch-1 p95 ms", f"batch-{BATCH_SIZE} img/s"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, latencies, throughput in rows:
        p50, p95 = np.percentile(latencies, [50, 95])
        table.add_row(name, f"{p50:.2f}", f"{p95:.2f}", f"{throughput:.0f}")
    console.print(table)
    console.print(
        f"model from {model_dir}; server ready in {ready_s:.1f} s; "
        f"{SINGLE_REQUESTS} single requests, {BATCH_ROUNDS} batches of {BATCH_SIZE}"
    )


if __name__ == "__main__":
    main()

"""ONNX Runtime against TorchScript for the quality model on the CPU: latency, throughput,
memory and agreement.

The shipped model (`imaging/models/quality/`, its `model.pt` and the `model.onnx` exported beside
it) is scored by `QualityModel` (TorchScript, frozen for inference, as a site runs it) and by
`OnnxQualityModel` (ONNX Runtime's CPU execution provider; without its CPU memory arena, as it
loads by default, and with it), each in a fresh process, with 1 and 2 threads and
`OMP_WAIT_POLICY=PASSIVE`: load time,
batch-1 latency over 200 calls, batch-32 throughput over 10 batches, RSS once loaded and at peak
(VmHWM), and the largest difference of probabilities between the two on the same frames: six
simulated 1024² frames (two good, two medium, two bad; `training.simulator`), preprocessed as a
site does, which also make up the batches. The
TensorRT and CUDA providers (a Jetson, a GPU) are not measured here: there are none on this
machine. The ONNX Runtime processes hold torch too (~250 MiB): `imaging.onnx_model` takes the
manifest's definition from `imaging.quality_model`, which imports it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from imaging.preprocess import preprocess_frame
from protos import QualityLabel

RUNTIMES = ("torchscript", "onnxruntime", "onnxruntime+arena")
THREADS = (1, 2)
SINGLE_CALLS = 200
BATCH = 32
BATCHES = 10
SEED = 20261203

console = Console(width=120)


def _rss_mib() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def frames(path: Path) -> Path:
    """Six preprocessed simulated frames, two per label, saved to `path` (.npy)."""
    from training.simulator import SimCamera
    from training.simulator.dataset import simulate_labelled_frame

    camera = SimCamera(width_px=1024, height_px=1024)
    night = datetime(2026, 11, 24, 3, tzinfo=UTC)
    batch = [
        preprocess_frame(
            simulate_labelled_frame(label, camera, seed=SEED, index=i, date_obs=night).data
        )
        for label in QualityLabel
        for i in range(2)
    ]
    np.save(path, np.stack(batch).astype(np.float32))
    return path


def measure(runtime: str, threads: int, frames_path: str) -> dict:
    """Run in a fresh process: load the model with one runtime and time it."""
    started = time.perf_counter()
    from imaging.scoring import QualityPredictor
    from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR

    model: QualityPredictor
    if runtime == "torchscript":
        import torch

        torch.set_num_threads(threads)
        from imaging.quality_model import QualityModel

        model = QualityModel.load(SHIPPED_QUALITY_MODEL_DIR)
    else:
        from imaging.onnx_model import OnnxQualityModel

        model = OnnxQualityModel.load(
            SHIPPED_QUALITY_MODEL_DIR,
            providers=["CPUExecutionProvider"],
            threads=threads,
            cpu_memory_arena=runtime.endswith("+arena"),
        )
    simulated = np.load(frames_path)
    single = simulated[:1]
    batch = np.resize(simulated, (BATCH, *simulated.shape[1:]))
    for _ in range(5):  # warm-up: TorchScript's profiling runs, ONNX Runtime's first allocations
        model.predict(single)
        model.predict(batch[:2])
    load_s = time.perf_counter() - started
    ready_mib = _rss_mib()[0]
    latencies = []
    for _ in range(SINGLE_CALLS):
        t0 = time.perf_counter()
        model.predict(single)
        latencies.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    for _ in range(BATCHES):
        model.predict(batch)
    throughput = BATCH * BATCHES / (time.perf_counter() - t0)
    probabilities = model.predict(simulated)
    return {
        "load_s": load_s,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "images_per_s": throughput,
        "ready_mib": ready_mib,
        "peak_mib": _rss_mib()[1],
        "probabilities": probabilities.tolist(),
    }


def _in_fresh_process(runtime: str, threads: int, frames_path: Path) -> dict:
    code = (
        "import json, sys; from bench.bench_onnx import measure; "
        f"print(json.dumps(measure({runtime!r}, {threads}, {str(frames_path)!r})))"
    )
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        console.print("simulating and preprocessing 6 frames of 1024² ...")
        frames_path = frames(Path(folder) / "frames.npy")
        for threads in THREADS:
            for runtime in RUNTIMES:
                console.print(f"{runtime}, {threads} thread(s) ...")
                results[runtime, threads] = _in_fresh_process(runtime, threads, frames_path)
    table = Table(
        title=f"Quality model on the CPU ({os.cpu_count()} cores): TorchScript vs ONNX Runtime; "
        f"batch 1 x {SINGLE_CALLS}, batch {BATCH} x {BATCHES}, fresh process each"
    )
    columns = ("runtime", "threads", "load s", "b1 p50 ms", "b1 p95 ms", f"b{BATCH} img/s")
    for column in (*columns, "RSS ready MiB", "RSS peak MiB", "max |Δp|"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for (runtime, threads), r in results.items():
        reference = np.array(results["torchscript", threads]["probabilities"])
        difference = float(np.max(np.abs(np.array(r["probabilities"]) - reference)))
        table.add_row(
            runtime,
            str(threads),
            f"{r['load_s']:.2f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['images_per_s']:.0f}",
            f"{r['ready_mib']:.0f}",
            f"{r['peak_mib']:.0f}",
            "-" if runtime == "torchscript" else f"{difference:.1e}",
        )
    console.print(table)


if __name__ == "__main__":
    main()

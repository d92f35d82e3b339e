"""Scoring speed and memory on 4096x4096 uint16 frames: the seed's checker against ours.

Three paths, each timed per frame over several rounds, with two torch threads:
  (a) the seed's `RealTimeQualityChecker.assess_file`, re-implemented here only, as the seed
      wrote it (fits.open, hdul[0].data, scipy.ndimage.zoom, percentile clip, its CNN);
  (b) ours: `read_frame` + `preprocess_frame` + `QualityModel.predict`;
  (c) the full `score_frame` verdict with image metrics, photometry against the fields' catalogues
      and reasons, reading included.
Goals: (b) at least 8x faster than (a); (c) median at most 0.5 s; peak RSS while scoring at most
1 GB. Both are measured in fresh processes with `OMP_WAIT_POLICY=PASSIVE`, as a site agent
should run; the peak RSS is the process's VmHWM.

Frames come from `training.simulator` (good, medium and bad conditions). The model is the
exported one in `imaging/models/quality/` when it loads, else the seed's CNN architecture
with untrained weights, exported the same way (inference costs the same).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from rich.console import Console
from rich.table import Table
from scipy.ndimage import zoom
from torch import nn

from imaging.fits_reader import read_frame
from imaging.photometry import PhotometricCalibration
from imaging.preprocess import preprocess_frame
from imaging.quality_model import ModelLoadError, QualityModel, write_model
from imaging.scoring import score_frame
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from protos import FrameScore, QualityLabel

FRAME_SIDE_PX = 4096
ROUNDS = 3
TORCH_THREADS = 2
SPEED_UP_GOAL = 8.0
FULL_SCORE_GOAL_S = 0.5
PEAK_RSS_GOAL_MB = 1024.0

console = Console()


class SeedQualityClassifier(nn.Module):
    """The seed's CNN (chapter 8, step 3), unchanged."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 8 * 8, 256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SeedChecker:
    """The seed's `RealTimeQualityChecker` (chapter 8, step 5), with its model in memory."""

    def __init__(self) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = SeedQualityClassifier(num_classes=3).to(self.device).eval()
        self.classes = ["good", "medium", "bad"]

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        zoom_factor = 128 / max(image.shape)
        image = zoom(image.astype(np.float32), zoom_factor)
        image = image[:128, :128]
        image = np.nan_to_num(image, nan=0)
        p1, p99 = np.percentile(image, [1, 99])
        image = np.clip(image, p1, p99)
        image = (image - image.min()) / (image.max() - image.min() + 1e-8)
        # `.float()`: under numpy 2 the clip by float64 percentiles makes the image float64.
        tensor = torch.from_numpy(image).unsqueeze(0).unsqueeze(0).float()
        return tensor.to(self.device)

    def assess(self, image: np.ndarray) -> dict:
        tensor = self.preprocess(image)
        with torch.no_grad():
            probabilities = torch.softmax(self.model(tensor), dim=1)[0]
        predicted = int(torch.argmax(probabilities).item())
        return {"quality": self.classes[predicted], "confidence": probabilities[predicted].item()}

    def assess_file(self, filepath: Path) -> dict:
        with fits.open(filepath) as hdul:
            image = hdul[0].data
        return self.assess(image)


def write_frames(folder: Path) -> list[Path]:
    """One 4096x4096 uint16 frame per quality label, from the simulator, with the catalogues
    of their fields and the camera's calibration (`folder/photometry.json`)."""
    from training.simulator import (
        DEFAULT_NIGHT,
        DEFAULT_SITE_NAME,
        SimCamera,
        sample_conditions,
        simulate_frame,
        write_frame,
    )
    from training.simulator.catalogue import (
        CATALOGUE_DIR_NAME,
        write_calibration,
        write_field_catalogue,
    )

    camera = SimCamera(width_px=FRAME_SIDE_PX, height_px=FRAME_SIDE_PX)
    rng = np.random.default_rng(2026)
    paths = []
    for label in QualityLabel:
        frame = simulate_frame(
            sample_conditions(rng, label),
            camera,
            date_obs=DEFAULT_NIGHT,
            site_name=DEFAULT_SITE_NAME,
            rng=rng,
        )
        paths.append(write_frame(frame, folder / f"{label.value}.fits"))
        write_field_catalogue(frame, folder / CATALOGUE_DIR_NAME, rng)
    write_calibration(camera, calibration_path(folder), CATALOGUE_DIR_NAME)
    return paths


def calibration_path(folder: Path) -> Path:
    return folder / "photometry.json"


def quality_model_dir(folder: Path) -> tuple[Path, str]:
    """The exported model if it loads, else the seed architecture exported into `folder`."""
    try:
        QualityModel.load(SHIPPED_QUALITY_MODEL_DIR)
        return SHIPPED_QUALITY_MODEL_DIR, "exported model"
    except ModelLoadError:
        write_model(SeedQualityClassifier().eval(), folder / "1", name="seed-cnn", version="0")
        return folder, "seed CNN, untrained (no exported model)"


def timed_ms(run: Callable[[Path], object], paths: list[Path]) -> list[float]:
    """Milliseconds per call of `run(path)`, over `ROUNDS` rounds of all frames, after a warm-up."""
    for path in paths:
        run(path)
    times = []
    for _ in range(ROUNDS):
        for path in paths:
            started = time.perf_counter()
            run(path)
            times.append((time.perf_counter() - started) * 1000.0)
    return times


def time_the_three_paths(model_dir: str, calibration: str, *paths: str) -> dict[str, list[float]]:
    """Child process: milliseconds per frame of the seed's path, ours, and the full score
    (metrics and photometry included)."""
    torch.set_num_threads(TORCH_THREADS)
    model = QualityModel.load(Path(model_dir))
    photometry = PhotometricCalibration.load(Path(calibration))
    seed = SeedChecker()
    frames = [Path(path) for path in paths]

    def full(path: Path) -> FrameScore:
        return score_frame(read_frame(path), model, site_id="b", photometry=photometry)

    def ours(path: Path) -> np.ndarray:
        return model.predict(preprocess_frame(read_frame(path).data)[np.newaxis])

    return {
        "seed": timed_ms(seed.assess_file, frames),
        "ours": timed_ms(ours, frames),
        "full": timed_ms(full, frames),
    }


def peak_rss_while_scoring(model_dir: str, calibration: str, *paths: str) -> dict[str, float]:
    """Child process: peak RSS (MB) after loading the model, and after scoring every frame."""
    torch.set_num_threads(TORCH_THREADS)
    model = QualityModel.load(Path(model_dir))
    photometry = PhotometricCalibration.load(Path(calibration))
    ready_mb = peak_rss_mb()
    for path in paths:
        score_frame(read_frame(Path(path)), model, site_id="bench", photometry=photometry)
    return {"ready_mb": ready_mb, "peak_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM belongs to this program alone, while
    `getrusage`'s ru_maxrss keeps the peak of the parent it was forked from."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(function: Callable[..., dict], *args: object) -> dict:
    """Run `function(*args)` of this module in a fresh Python, OpenMP threads sleeping when idle
    (spinning ones thrash on a busy machine: the seed's CNN took 400 ms instead of 10)."""
    code = (
        "import json, sys; import bench.bench_scoring as b; "
        f"print(json.dumps(b.{function.__name__}(*sys.argv[1:])))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as folder:
        console.print(f"simulating {len(QualityLabel)} frames of {FRAME_SIDE_PX}² px ...")
        paths = write_frames(Path(folder))
        model_dir, model_name = quality_model_dir(Path(folder) / "model")
        console.print("timing the three paths ...")
        calibration = calibration_path(Path(folder))
        times = in_fresh_process(time_the_three_paths, model_dir, calibration, *paths)
        rss = in_fresh_process(peak_rss_while_scoring, model_dir, calibration, *paths)
    seed_ms, ours_ms, full_ms = (np.array(times[key]) for key in ("seed", "ours", "full"))
    ready_mb, peak_mb = rss["ready_mb"], rss["peak_mb"]

    speed_up = float(np.median(seed_ms) / np.median(ours_ms))
    table = Table(
        title=f"Scoring {FRAME_SIDE_PX}x{FRAME_SIDE_PX} uint16 frames "
        f"({len(paths)} frames x {ROUNDS} rounds, {TORCH_THREADS} torch threads; {model_name})"
    )
    for column in ("path", "median ms", "p95 ms", "best ms", "goal", "met"):
        table.add_column(column, justify="left" if column in ("path", "goal") else "right")
    table.add_row("(a) seed assess_file", *_stats(seed_ms), "reference", "")
    table.add_row(
        "(b) read + preprocess + model",
        *_stats(ours_ms),
        f"≥{SPEED_UP_GOAL:.0f}x faster than (a): {speed_up:.1f}x",
        _met(speed_up >= SPEED_UP_GOAL),
    )
    table.add_row(
        "(c) full score with metrics",
        *_stats(full_ms),
        f"median ≤ {FULL_SCORE_GOAL_S * 1000:.0f} ms",
        _met(np.median(full_ms) <= FULL_SCORE_GOAL_S * 1000),
    )
    table.add_row(
        "peak RSS while scoring (c)",
        f"{peak_mb:.0f} MB",
        "",
        f"{ready_mb:.0f} MB loaded",
        f"≤ {PEAK_RSS_GOAL_MB:.0f} MB",
        _met(peak_mb <= PEAK_RSS_GOAL_MB),
    )
    console.print(table)
    load_1min, load_5min, _ = os.getloadavg()
    console.print(
        f"[dim]load average during the run: {load_5min:.1f} (5 min), {load_1min:.1f} (1 min) on "
        f"{os.cpu_count()} cores; 'best' is the least disturbed frame.[/]"
    )


def _stats(milliseconds: np.ndarray) -> tuple[str, str, str]:
    return (
        f"{np.median(milliseconds):.1f}",
        f"{np.percentile(milliseconds, 95):.1f}",
        f"{milliseconds.min():.1f}",
    )


def _met(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"

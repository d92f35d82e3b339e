"""Labelled training sets on disk: `out_dir/good`, `out_dir/medium`, `out_dir/bad` of FITS frames.

This is the seed's folder layout (chapter 8), so the dataset code reads simulated and real,
hand-sorted frames alike. Frames are taken through simulated nights, one every exposure time
plus an overhead, each at a field that is up at that moment; every frame has its own random
stream `default_rng([seed, index, attempt])`, so any one frame can be remade alone.
"""

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from imaging.quality_thresholds import QualityThresholds
from protos import QualityLabel, SiteLocation
from training.simulator.camera import SimCamera
from training.simulator.catalogue import (
    CALIBRATION_FILE_NAME,
    CATALOGUE_DIR_NAME,
    write_calibration,
    write_field_catalogue,
)
from training.simulator.conditions import sample_conditions
from training.simulator.fitsio import write_frame
from training.simulator.frame import SimulatedFrame, simulate_frame
from training.simulator.pairs import DEFAULT_NIGHT
from training.simulator.pointing import DEFAULT_SITE_LOCATION, DEFAULT_SITE_NAME
from training.simulator.truth import FrameTruth

LABELS = (QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD)
OVERHEAD_S = 30.0
"""Readout and slew time between two exposures."""
NIGHT_HOURS = 9.0
"""Length of one simulated observing night; the next starts a day after the first."""
MAX_ATTEMPTS = 10
"""Draws tried before giving up on a label the camera cannot produce."""

CATALOGUE_STREAM = 1_000_003
"""Third seed element of the random stream of a frame's catalogue errors."""

MIXED_SHARE_PER_CLASS = 25
"""Frames per label one process writes at a time in a mixed set; fixed, so the set is the same
whatever the number of processes."""

FrameWritten = Callable[[Path, FrameTruth], None]
"""Called with each frame's path and truth once it is on disk."""


def exposure_starts(start: datetime, count: int, cadence_s: float) -> Iterator[datetime]:
    """Start times of `count` exposures every `cadence_s`, nights of NIGHT_HOURS a day apart."""
    per_night = max(1, int(NIGHT_HOURS * 3600 // cadence_s))
    for index in range(count):
        night, slot = divmod(index, per_night)
        yield start + timedelta(days=night, seconds=slot * cadence_s)


def simulate_labelled_frame(
    label: QualityLabel,
    camera: SimCamera,
    *,
    seed: int,
    index: int,
    date_obs: datetime,
    site_name: str = DEFAULT_SITE_NAME,
    site: SiteLocation = DEFAULT_SITE_LOCATION,
    thresholds: QualityThresholds | None = None,
) -> SimulatedFrame:
    """A frame whose true label is `label`; redraws if the frame (by saturation) says otherwise."""
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, index, attempt])
        frame = simulate_frame(
            sample_conditions(rng, label, thresholds),
            camera,
            date_obs=date_obs,
            site_name=site_name,
            site=site,
            rng=rng,
            thresholds=thresholds,
        )
        if frame.truth.label is label:
            return frame
    raise RuntimeError(
        f"{MAX_ATTEMPTS} draws for a {label.value} frame all came out "
        f"{frame.truth.label.value} (saturated fraction {frame.truth.saturated_fraction:.4f}); "
        "the camera saturates too easily: shorten the exposure or raise the saturation level"
    )


def write_labelled_set(
    out_dir: Path,
    per_class: int,
    camera: SimCamera,
    seed: int,
    progress: FrameWritten | None = None,
    *,
    labels: tuple[QualityLabel, ...] = LABELS,
    site_name: str = DEFAULT_SITE_NAME,
    site: SiteLocation = DEFAULT_SITE_LOCATION,
    start: datetime = DEFAULT_NIGHT,
    thresholds: QualityThresholds | None = None,
) -> list[Path]:
    """Write `per_class` frames of each label into `out_dir/<label>/`; return their paths.

    Labels alternate through the night, so no class is tied to a time or a part of the sky.
    The catalogue of each frame's field goes to `out_dir/catalogues/` and the camera's
    photometric calibration to `out_dir/photometry.json` (see `training.simulator.catalogue`).
    `progress(path, truth)` is called after each frame is written.
    """
    count = per_class * len(labels)
    paths = []
    write_calibration(camera, out_dir / CALIBRATION_FILE_NAME, CATALOGUE_DIR_NAME)
    times = exposure_starts(start, count, camera.exptime_s + OVERHEAD_S)
    for index, date_obs in enumerate(times):
        label = labels[index % len(labels)]
        frame = simulate_labelled_frame(
            label,
            camera,
            seed=seed,
            index=index,
            date_obs=date_obs,
            site_name=site_name,
            site=site,
            thresholds=thresholds,
        )
        name = f"{site_name}-{date_obs:%Y%m%dT%H%M%S}.fits"
        path = write_frame(frame, out_dir / label.value / name)
        catalogue_rng = np.random.default_rng([seed, index, CATALOGUE_STREAM])
        write_field_catalogue(frame, out_dir / CATALOGUE_DIR_NAME, catalogue_rng)
        paths.append(path)
        if progress is not None:
            progress(path, frame.truth)
    return paths


def _write_chunk(out_dir: Path, per_class: int, side: int, seed: int, chunk: int) -> int:
    """One process's share of a mixed set: `per_class` frames per label of one frame size."""
    camera = SimCamera(width_px=side, height_px=side)
    paths = write_labelled_set(
        out_dir, per_class, camera, seed=seed + 1000 * side + chunk, site_name=f"sim{side}-{chunk}"
    )
    return len(paths)


def write_mixed_set(
    out_dir: Path,
    per_class: int,
    sides: list[int],
    seed: int,
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write `per_class` frames of each label spread evenly over square cameras of `sides`
    pixels, in `jobs` processes; `progress(done, total)` after each finished share. Returns the
    number of frames written."""
    shares = []
    for position, side in enumerate(sides):
        count = per_class // len(sides) + (position < per_class % len(sides))
        for chunk, first in enumerate(range(0, count, MIXED_SHARE_PER_CLASS)):
            shares.append((min(MIXED_SHARE_PER_CLASS, count - first), side, chunk))
    total = per_class * len(LABELS)
    done = 0
    if jobs == 1:  # no process to start
        for share, side, chunk in shares:
            done += _write_chunk(out_dir, share, side, seed, chunk)
            if progress is not None:
                progress(done, total)
        return done
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        # Largest frames first, so no process is left writing big frames alone at the end.
        futures = [
            pool.submit(_write_chunk, out_dir, share, side, seed, chunk)
            for share, side, chunk in sorted(shares, key=lambda item: -item[1])
        ]
        for future in as_completed(futures):
            done += future.result()
            if progress is not None:
                progress(done, total)
    return done

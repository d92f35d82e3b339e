"""Labelled frame data sets for the quality model: build, split, cache, load and augment.

A data set starts as a folder of FITS frames in `good/`, `medium/`, `bad/` (simulated or real,
labelled by hand). `build_dataset` reads each frame once with the site's `read_frame`,
preprocesses it with the site's `preprocess_frame` (the one frame->tensor definition, so training
and serving cannot drift), splits the frames 70/15/15 stratified by class with a fixed seed, and
caches each split as one `.npz` beside a `dataset.json` summary: images, labels, file names,
the model's targets and the photometric floors. The model learns what a frame shows: a
simulated frame's target is the grade of the criteria other than transparency and sky
brightness (from its truth); those two are measured by the site's photometry when the folder
has a `photometry.json` calibration, and floor the verdict (`imaging.verdict`). A frame
without truth keeps its folder's label as target.
Unreadable frames are reported and skipped. `augment_mosaic` is the on-the-fly augmentation of
the training split; it respects the mosaic layout of the preprocessed tensor.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from imaging.fits_reader import FrameError, read_frame
from imaging.metrics import global_background
from imaging.photometry import PhotometricCalibration, PhotometryResult, measure_photometry
from imaging.preprocess import (
    PANEL_PX,
    PREPROCESS_VERSION,
    STRETCH_SIGMAS,
    STRETCH_SOFTENING,
    asinh_stretch,
    preprocess_frame,
)
from imaging.quality_thresholds import QualityThresholds
from imaging.scoring import DEFAULT_SATURATION_ADU
from imaging.trails import count_trails
from imaging.verdict import CLASS_ORDER, image_grade, measured_floor
from training.quality_net import CLASS_NAMES
from training.simulator.fitsio import read_truth, truth_path

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
FITS_SUFFIXES: tuple[str, ...] = (".fits", ".fit", ".fts", ".fits.gz", ".fits.fz")
SUMMARY_FILE = "dataset.json"
CALIBRATION_FILE = "photometry.json"
"""A data set's photometric calibration (with its catalogue folder), when it has one."""
TARGETS_VERSION = "image-criteria-3"
"""What the model learns: bump when the definition of targets or floors changes."""

Progress = Callable[[int, int], None]
"""Called with (frames done, frames in all) while a data set is built."""


class SkippedFrame(BaseModel):
    """A frame that could not be read, and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str


class DatasetSummary(BaseModel):
    """What a cached data set holds and where it came from."""

    source_dir: str
    fingerprint: str
    preprocess_version: str
    seed: int
    class_names: list[str]
    split_fractions: list[float]
    split_counts: dict[str, dict[str, int]]
    skipped: list[SkippedFrame]

    @property
    def frames(self) -> int:
        """Frames cached over all splits."""
        return sum(sum(counts.values()) for counts in self.split_counts.values())


@dataclass(frozen=True)
class LabelledArrays:
    """One cached split: images [N, 1, 128, 128] float32, and per frame (int64 class indices)
    its label, the model's target and the photometric floor of the verdict, and its file."""

    images: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    floors: np.ndarray
    files: np.ndarray


@dataclass(frozen=True)
class FrameInput:
    """What one frame gives the data set: model input, the model's target, photometric floor."""

    image: np.ndarray
    target: int | None
    floor: int


def list_labelled_frames(data_dir: Path) -> tuple[list[Path], np.ndarray]:
    """FITS files under `data_dir/<class>/`, sorted, and their class indices."""
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(CLASS_NAMES):
        found = sorted(
            p
            for p in (data_dir / name).glob("*")
            if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES)
        )
        paths.extend(found)
        labels.extend([index] * len(found))
    return paths, np.array(labels, dtype=np.int64)


def stratified_split(
    labels: np.ndarray, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Indices of each split, with every class divided in the same proportions.

    Each class is shuffled with `seed` and cut into train/val/test; val and test get at least one
    frame of every class that has three or more. The same labels and seed give the same split.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        minimum = 1 if len(members) >= len(SPLIT_NAMES) else 0
        n_val = max(minimum, round(len(members) * fractions[1]))
        n_test = max(minimum, round(len(members) * fractions[2]))
        n_train = len(members) - n_val - n_test
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {name: np.sort(np.concatenate(parts[name])).astype(np.int64) for name in SPLIT_NAMES}


def _fingerprint(data_dir: Path, paths: Sequence[Path], seed: int) -> str:
    """Changes when a file is added, removed or rewritten, or the seed, preprocessing, targets
    or the photometric calibration change."""
    calibration = data_dir / CALIBRATION_FILE
    stamp = calibration.read_text() if calibration.is_file() else ""
    digest = hashlib.sha256(f"{PREPROCESS_VERSION}|{TARGETS_VERSION}|{seed}|{stamp}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"|{path.relative_to(data_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _split_path(cache_dir: Path, split: str) -> Path:
    return cache_dir / f"{split}.npz"


def _cached_summary(cache_dir: Path, fingerprint: str) -> DatasetSummary | None:
    """The summary of a complete cache built from the same files, else None."""
    summary_path = cache_dir / SUMMARY_FILE
    if not summary_path.is_file():
        return None
    summary = DatasetSummary.model_validate_json(summary_path.read_text())
    complete = all(_split_path(cache_dir, split).is_file() for split in SPLIT_NAMES)
    return summary if complete and summary.fingerprint == fingerprint else None


def frame_input(path: Path, calibration: PhotometricCalibration | None) -> FrameInput | str:
    """A frame's model input, target and measured floor, or why it cannot be read.

    A simulated frame (truth beside it) teaches the model the grade of the criteria it can see;
    a frame without truth, its folder's label (None here). The floor is what the site measures
    (satellite trails; with a calibration, transparency and sky brightness), as
    `imaging.scoring` does."""
    try:
        frame = read_frame(path)
    except FrameError as exc:
        return str(exc)
    target = None
    if truth_path(path).is_file():
        target = CLASS_ORDER.index(image_grade(read_truth(path).grades))
    saturation = frame.saturation_adu or DEFAULT_SATURATION_ADU
    measured = PhotometryResult()
    if calibration is not None:
        measured = measure_photometry(
            frame,
            background_adu=global_background(frame.data)[0],
            pixel_scale_arcsec=frame.pixel_scale_arcsec,
            saturation_adu=saturation,
            calibration=calibration,
        )
    grade = measured_floor(
        measured.transparency,
        measured.transparency_error,
        measured.sky_brightness_mag_arcsec2,
        count_trails(frame.data, saturation),
        QualityThresholds(),
    )
    floor = CLASS_ORDER.index(grade)
    return FrameInput(image=preprocess_frame(frame.data), target=target, floor=floor)


def calibration_of(data_dir: Path) -> PhotometricCalibration | None:
    """The data set's photometric calibration, if it has one."""
    path = data_dir / CALIBRATION_FILE
    return PhotometricCalibration.load(path) if path.is_file() else None


def build_dataset(
    data_dir: Path, cache_dir: Path, seed: int, progress: Progress | None = None, jobs: int = 1
) -> DatasetSummary:
    """Read, preprocess, split and cache the labelled frames of `data_dir` into `cache_dir`
    (in `jobs` processes).

    A cache built from the same files with the same seed and preprocessing is reused as is.
    """
    paths, labels = list_labelled_frames(data_dir)
    if not paths:
        raise FileNotFoundError(f"no FITS frames under {data_dir}/{{{','.join(CLASS_NAMES)}}}/")
    fingerprint = _fingerprint(data_dir, paths, seed)
    cached = _cached_summary(cache_dir, fingerprint)
    if cached is not None:
        return cached
    calibration = calibration_of(data_dir)
    read = partial(frame_input, calibration=calibration)
    frames: list[FrameInput] = []
    kept: list[int] = []
    skipped: list[SkippedFrame] = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        inputs: Iterator[FrameInput | str] = map(read, paths)
        if jobs > 1:
            inputs = pool.map(read, paths, chunksize=16)
        for done, (path, frame) in enumerate(zip(paths, inputs, strict=True), start=1):
            if isinstance(frame, str):
                skipped.append(SkippedFrame(path=str(path.relative_to(data_dir)), reason=frame))
            else:
                frames.append(frame)
                kept.append(done - 1)
            if progress is not None:
                progress(done, len(paths))
    kept_labels = labels[kept]
    targets = np.array(
        [
            label if frame.target is None else frame.target
            for frame, label in zip(frames, kept_labels, strict=True)
        ],
        dtype=np.int64,
    )
    floors = np.array([f.floor for f in frames], dtype=np.int64)
    kept_files = np.array([str(paths[i].relative_to(data_dir)) for i in kept])
    stacked = np.stack([f.image for f in frames]).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    split_counts: dict[str, dict[str, int]] = {}
    for split, indices in stratified_split(kept_labels, seed).items():
        np.savez(
            _split_path(cache_dir, split),
            images=stacked[indices],
            labels=kept_labels[indices],
            targets=targets[indices],
            floors=floors[indices],
            files=kept_files[indices],
        )
        counts = np.bincount(kept_labels[indices], minlength=len(CLASS_NAMES))
        split_counts[split] = dict(zip(CLASS_NAMES, counts.tolist(), strict=True))
    summary = DatasetSummary(
        source_dir=str(data_dir),
        fingerprint=fingerprint,
        preprocess_version=PREPROCESS_VERSION,
        seed=seed,
        class_names=list(CLASS_NAMES),
        split_fractions=list(SPLIT_FRACTIONS),
        split_counts=split_counts,
        skipped=skipped,
    )
    (cache_dir / SUMMARY_FILE).write_text(summary.model_dump_json(indent=2))
    return summary


def save_split(cache_dir: Path, split: str, arrays: LabelledArrays) -> Path:
    """Write one split as `load_split` reads it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _split_path(cache_dir, split)
    np.savez(
        path,
        images=arrays.images,
        labels=arrays.labels,
        targets=arrays.targets,
        floors=arrays.floors,
        files=arrays.files,
    )
    return path


def load_split(cache_dir: Path, split: str) -> LabelledArrays:
    """One cached split, fully in memory."""
    with np.load(_split_path(cache_dir, split)) as arrays:
        return LabelledArrays(
            images=arrays["images"],
            labels=arrays["labels"],
            targets=arrays["targets"],
            floors=arrays["floors"],
            files=arrays["files"],
        )


def augment_mosaic(
    image: np.ndarray,
    rng: np.random.Generator,
    max_shift_px: int = 3,
    max_snr_loss: float = 0.05,
) -> np.ndarray:
    """A physically plausible variant of one preprocessed frame [1, 128, 128].

    The tensor is a 2x2 mosaic of 64x64 panels (`imaging.preprocess`), so each panel is
    transformed in place and nothing moves from one panel to another. Every panel gets the same
    transform, as a real change of camera orientation, pointing or detector would give them:
    - a 90-degree rotation and an optional flip (the sky has no preferred orientation; star
      shapes, trails and donuts keep their size and turn with the frame);
    - a shift of up to `max_shift_px` pixels, the edge filled by reflection (pointing offset);
    - noise and brightness. The preprocessing measures each frame in background sigmas, so a
      change of gain, exposure or sky level alone is invisible to the model; what a brightness
      or noise change does show is the sources' signal-to-noise. Fresh Gaussian noise is added
      in the linear units of the stretch and the frame re-normalised to unit background noise,
      as the preprocessing would: every source loses up to `max_snr_loss` of its
      signal-to-noise (a noisier detector, a little more extinction). The simulator keeps every
      frame at least 9 % in signal-to-noise from a grade boundary, so the label stays true.
    """
    side = PANEL_PX
    turns = int(rng.integers(4))
    flip = bool(rng.integers(2))
    shift = rng.integers(-max_shift_px, max_shift_px + 1, size=2)
    out = np.empty_like(image)
    for row in range(image.shape[1] // side):
        for column in range(image.shape[2] // side):
            window = np.s_[:, row * side : (row + 1) * side, column * side : (column + 1) * side]
            panel = np.rot90(image[window], k=turns, axes=(1, 2))
            if flip:
                panel = panel[:, :, ::-1]
            out[window] = _shift_reflect(panel, int(shift[0]), int(shift[1]))
    snr_factor = 1.0 - rng.uniform(0.0, max_snr_loss)
    extra_noise = np.sqrt(1.0 / snr_factor**2 - 1.0)
    linear = sigmas_above_background(out) + rng.normal(0.0, extra_noise, size=out.shape)
    return asinh_stretch(linear * snr_factor, background=0.0, sigma=1.0).astype(np.float32)


def sigmas_above_background(stretched: np.ndarray) -> np.ndarray:
    """The inverse of the preprocessing stretch: pixel values in background sigmas (float64).

    Pixels the stretch clipped (beyond ~3000 sigma) come back at the clip level.
    """
    scale = np.arcsinh(STRETCH_SOFTENING)
    return STRETCH_SIGMAS * np.sinh(stretched.astype(np.float64) * scale)


def _shift_reflect(panel: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`panel` [C, H, W] moved by (dy, dx) pixels, the uncovered edge filled by reflection."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return panel
    padded = np.pad(panel, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    height, width = panel.shape[1:]
    return padded[:, pad - dy : pad - dy + height, pad - dx : pad - dx + width]


class QualityTensorDataset(torch.utils.data.Dataset):
    """A cached split as a torch data set, optionally augmented on the fly."""

    def __init__(self, arrays: LabelledArrays, augment: bool, seed: int = 0) -> None:
        self.images = arrays.images
        self.labels = arrays.targets
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.augment:
            image = augment_mosaic(image, self.rng)
        return torch.from_numpy(np.ascontiguousarray(image)), int(self.labels[index])

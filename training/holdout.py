"""The fixed, versioned held-out sets on which the gate compares a candidate with the serving model.

A held-out set is a folder holding `holdout.npz` (the arrays) and `holdout.json` (`HoldoutInfo`:
which recipe made it, its version string and the sha256 of its arrays' content). It is built
once, from fixed seeds that no training set uses, and then only read: `load_*` refuses a set
whose arrays no longer hash to what its info says, and every run record names the version and
the hash it was judged on, so two runs that name the same hash compared on the same samples.

- **quality**: simulated frames, `per_class` of each class on each of four cameras of different
  sizes and pixel scales (`QUALITY_CAMERAS`), read, preprocessed and measured exactly as a site
  does (`training.dataset.frame_input`). The label is the frame's full label, and the model is
  judged as a site judges a frame: its probabilities floored by the frame's photometry.
  The real frames of `../shared/data/real/` are not in it: none comes with a quality grade of
  its own (the DECam, SAAO, NTT and raw CCD frames were kept as examples of other things), and a
  grade we gave them with our own thresholds on our own measurements would test the pipeline
  against itself. The satellite-streak frame only bounds its grade (a trail makes it medium at
  best), which a per-class recall cannot use.
- **realbogus**: the 36 real ZTF alerts of `ztf-alerts-kowalski/` (labelled by ZTF's `drb`, as
  `training.realbogus.evaluate` judges them) and the simulated triplets of the real/bogus run's
  held-out seed (`training.realbogus.run.HELD_OUT_SEED`).
"""

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from imaging.preprocess import PREPROCESS_VERSION
from imaging.transients.realbogus import CLASS_NAMES as REALBOGUS_CLASSES
from imaging.transients.realbogus import NORMALISATION_VERSION
from training.dataset import calibration_of, frame_input, list_labelled_frames
from training.quality_net import CLASS_NAMES as QUALITY_CLASSES
from training.simulator.camera import SimCamera
from training.simulator.dataset import write_labelled_set

ARRAYS_FILE = "holdout.npz"
INFO_FILE = "holdout.json"
QUALITY_HOLDOUT_GENERATION = "quality-holdout-1"
"""Bump when the recipe of the quality set changes (simulator, seeds, cameras)."""
REALBOGUS_HOLDOUT_GENERATION = "realbogus-holdout-1"
QUALITY_PER_CLASS = 20
ZTF_SOURCE = "ztf-kowalski"
SIMULATED_SOURCE = "simulated"
Progress = Callable[[int, int], None]


class HoldoutError(RuntimeError):
    """A held-out set that cannot be built or read, or that changed on disk."""


class HoldoutCamera(BaseModel):
    """One simulated camera of the quality held-out set and the seed of its frames."""

    model_config = ConfigDict(frozen=True)

    side_px: int = Field(ge=64)
    pixel_scale_arcsec: float = Field(gt=0.0)
    seed: int

    @property
    def source(self) -> str:
        """The name the frames of this camera are counted under."""
        return f"sim-{self.side_px}px-{self.pixel_scale_arcsec:g}as"


QUALITY_CAMERAS = (
    HoldoutCamera(side_px=256, pixel_scale_arcsec=1.0, seed=7_770_256),
    HoldoutCamera(side_px=512, pixel_scale_arcsec=0.8, seed=7_770_512),
    HoldoutCamera(side_px=1024, pixel_scale_arcsec=0.6, seed=7_771_024),
    HoldoutCamera(side_px=2048, pixel_scale_arcsec=0.45, seed=7_772_048),
)
"""Seeds far from every training seed (the simulator's sets use seed + 1000 x side + chunk)."""


class HoldoutInfo(BaseModel):
    """What a held-out set is: its recipe's version, its content hash, what it holds."""

    model_config = ConfigDict(frozen=True)

    model: Literal["quality", "realbogus"]
    version: str = Field(description="The recipe: generation, sizes, seeds.")
    sha256: str = Field(description="SHA-256 of the arrays' names, dtypes, shapes and bytes.")
    samples: int
    input_version: str = Field(description="Preprocessing or normalisation of the inputs.")
    by_source: dict[str, int]
    by_label: dict[str, int]
    object_ids: list[str] = Field(
        default_factory=list, description="Real objects in the set (kept out of training)."
    )


@dataclass(frozen=True)
class QualityHoldout:
    """Preprocessed frames `[N, 1, 128, 128]`, full labels, photometric floors, sources."""

    images: np.ndarray
    labels: np.ndarray
    floors: np.ndarray
    sources: np.ndarray
    info: HoldoutInfo


@dataclass(frozen=True)
class RealBogusHoldout:
    """Raw triplets `[N, 3, 31, 31]`, labels (1 real), sources."""

    stamps: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    info: HoldoutInfo


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """The hash of a set's content, independent of how the `.npz` file was compressed."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _counts(values: Sequence[str] | np.ndarray) -> dict[str, int]:
    return dict(sorted(Counter(str(value) for value in values).items()))


def _save(folder: Path, arrays: dict[str, np.ndarray], info: HoldoutInfo) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
    (folder / INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")


def _load(folder: Path, model: str) -> tuple[dict[str, np.ndarray], HoldoutInfo]:
    """The arrays and info of a set, checked against the hash its info records."""
    try:
        info = HoldoutInfo.model_validate_json((folder / INFO_FILE).read_text())
        with np.load(folder / ARRAYS_FILE) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError) as exc:
        raise HoldoutError(f"{folder}: not a readable held-out set ({exc})") from exc
    if info.model != model:
        raise HoldoutError(f"{folder} holds the {info.model} held-out set, not the {model} one")
    actual = content_sha256(arrays)
    if actual != info.sha256:
        raise HoldoutError(
            f"{folder}: content sha256 {actual[:16]}... is not the recorded "
            f"{info.sha256[:16]}...: the held-out set changed on disk; rebuild it in a new folder"
        )
    return arrays, info


def quality_version(per_class: int, cameras: Sequence[HoldoutCamera]) -> str:
    """The version string of the quality recipe with these sizes."""
    sides = ",".join(f"{c.side_px}@{c.pixel_scale_arcsec:g}" for c in cameras)
    return f"{QUALITY_HOLDOUT_GENERATION}/{per_class}-per-class/{sides}"


def build_quality_holdout(
    folder: Path,
    per_class: int = QUALITY_PER_CLASS,
    cameras: Sequence[HoldoutCamera] = QUALITY_CAMERAS,
    progress: Progress | None = None,
) -> QualityHoldout:
    """Simulate (once), read and preprocess the quality held-out set into `folder`."""
    images, labels, floors, sources = [], [], [], []
    total = per_class * len(QUALITY_CLASSES) * len(cameras)
    for camera in cameras:
        frames_dir = folder / "frames" / camera.source
        paths, folder_labels = list_labelled_frames(frames_dir)
        if len(paths) != per_class * len(QUALITY_CLASSES):
            sim = SimCamera(
                width_px=camera.side_px,
                height_px=camera.side_px,
                pixel_scale_arcsec=camera.pixel_scale_arcsec,
            )
            write_labelled_set(
                frames_dir, per_class, sim, seed=camera.seed, site_name=f"holdout{camera.side_px}"
            )
            paths, folder_labels = list_labelled_frames(frames_dir)
        calibration = calibration_of(frames_dir)
        for path, label in zip(paths, folder_labels, strict=True):
            read = frame_input(path, calibration)
            if isinstance(read, str):
                raise HoldoutError(f"{path}: a held-out frame cannot be read ({read})")
            images.append(read.image)
            labels.append(int(label))
            floors.append(read.floor)
            sources.append(camera.source)
            if progress is not None:
                progress(len(images), total)
    arrays: dict[str, np.ndarray] = {
        "images": np.stack(images).astype(np.float32),
        "labels": np.array(labels, dtype=np.int64),
        "floors": np.array(floors, dtype=np.int64),
        "sources": np.array(sources),
    }
    info = HoldoutInfo(
        model="quality",
        version=quality_version(per_class, cameras),
        sha256=content_sha256(arrays),
        samples=len(labels),
        input_version=PREPROCESS_VERSION,
        by_source=_counts(sources),
        by_label=_counts([QUALITY_CLASSES[label] for label in labels]),
    )
    _save(folder, arrays, info)
    return load_quality_holdout(folder)


def load_quality_holdout(folder: Path) -> QualityHoldout:
    """A built quality held-out set, its content checked."""
    arrays, info = _load(folder, "quality")
    if info.input_version != PREPROCESS_VERSION:
        raise HoldoutError(
            f"{folder} was preprocessed with {info.input_version!r}, the sites now run "
            f"{PREPROCESS_VERSION!r}: build the held-out set again in a new folder"
        )
    return QualityHoldout(
        arrays["images"], arrays["labels"], arrays["floors"], arrays["sources"], info
    )


def build_realbogus_holdout(
    folder: Path, pairs: int | None = None, size_px: int | None = None
) -> RealBogusHoldout:
    """The real ZTF alerts and the simulated held-out triplets, into `folder`.

    `pairs` and `size_px` default to the real/bogus run's own held-out set (20 pairs at 512 px).
    """
    from training.realbogus.dataset import simulate_triplets
    from training.realbogus.evaluate import DRB_REAL, alert_triplet, read_ztf_alert_records
    from training.realbogus.run import (
        HELD_OUT_FIRST_INDEX,
        HELD_OUT_PAIRS,
        HELD_OUT_SEED,
        SIMULATED_FRAME_SIDE_PX,
    )

    pairs = HELD_OUT_PAIRS if pairs is None else pairs
    size_px = SIMULATED_FRAME_SIDE_PX if size_px is None else size_px
    records = read_ztf_alert_records()
    if not records:
        raise HoldoutError("no ZTF alerts found for the real/bogus held-out set")
    simulated = simulate_triplets(
        pairs, seed=HELD_OUT_SEED, size_px=size_px, first_index=HELD_OUT_FIRST_INDEX
    )
    real_stamps = np.stack([alert_triplet(record) for record in records])
    real_labels = [int(record["candidate"]["drb"] > DRB_REAL) for record in records]
    sources = [ZTF_SOURCE] * len(records) + [SIMULATED_SOURCE] * len(simulated.labels)
    labels = np.concatenate([np.array(real_labels), simulated.labels]).astype(np.int64)
    arrays: dict[str, np.ndarray] = {
        "stamps": np.concatenate([real_stamps, simulated.stamps]).astype(np.float32),
        "labels": labels,
        "sources": np.array(sources),
    }
    info = HoldoutInfo(
        model="realbogus",
        version=f"{REALBOGUS_HOLDOUT_GENERATION}/ztf-{len(records)}/sim-{pairs}x{size_px}px",
        sha256=content_sha256(arrays),
        samples=len(labels),
        input_version=NORMALISATION_VERSION,
        by_source=_counts(sources),
        by_label=_counts([REALBOGUS_CLASSES[label] for label in labels]),
        object_ids=sorted({str(record["objectId"]) for record in records}),
    )
    _save(folder, arrays, info)
    return load_realbogus_holdout(folder)


def load_realbogus_holdout(folder: Path) -> RealBogusHoldout:
    """A built real/bogus held-out set, its content checked."""
    arrays, info = _load(folder, "realbogus")
    return RealBogusHoldout(arrays["stamps"], arrays["labels"], arrays["sources"], info)


def holdout_exists(folder: Path) -> bool:
    """Whether `folder` holds a built held-out set (of either model)."""
    return (folder / INFO_FILE).is_file()


def describe(info: HoldoutInfo) -> str:
    """One line: version, hash prefix, size."""
    return f"{info.version} (sha256 {info.sha256[:12]}, {info.samples} samples)"

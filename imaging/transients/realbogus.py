"""The real/bogus classifier at a site: its input normalisation, manifest and verified loading.

A model version is a folder holding `model.pt` (TorchScript; input `[N, 3, 31, 31]` float32 made
by `normalise_triplets`; output `[N, 2]` logits over bogus, real) and `manifest.json`
(`RealBogusManifest`: name, version, sha256 of `model.pt`, input shape, normalisation version).
The shipped model lies in `imaging/models/realbogus/<version>/`. Training imports
`normalise_triplets` from here, so training and serving cannot normalise differently.
"""

from pathlib import Path
from typing import Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imaging.fits_reader import sha256_of_file
from imaging.gaussian import MAD_TO_SIGMA
from imaging.model_signature import ModelSignatureError, verify_version
from imaging.quality_model import inference_ready
from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.cutouts import CUTOUT_SIDE_PX
from protos import ModelRef
from protos.base import Sha256

MODEL_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
NORMALISATION_VERSION = "rb-asinh-1"
INPUT_SHAPE = (3, CUTOUT_SIDE_PX, CUTOUT_SIDE_PX)
CLASS_NAMES = ("bogus", "real")
SCORE_BATCH = 256
"""Triplets scored at a time: the network's activations for the few thousand detections a
4096² frame may hold would take hundreds of MB at once."""


class RealBogusManifest(BaseModel):
    """What a real/bogus model version is, written next to its `model.pt`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="realbogus", min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    sha256: Sha256 = Field(description="SHA-256 of model.pt.")
    class_names: tuple[str, str] = CLASS_NAMES
    input_shape: tuple[int, int, int] = INPUT_SHAPE
    normalisation_version: str = NORMALISATION_VERSION


class RealBogusLoadError(Exception):
    """A model folder that cannot be used: missing files, bad manifest, sha256 mismatch."""


MIN_FINITE_FOR_NOISE = 8
"""A stamp with fewer finite pixels is divided by 1 (its noise cannot be measured)."""


def _row_medians(rows: np.ndarray, finite_count: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN where a row has none): rows are sorted once,
    NaN last, and the middle of each row's finite part is read (np.median's even-count mean)."""
    ordered = np.sort(rows, axis=1)
    low = np.maximum((finite_count - 1) // 2, 0)[:, None]
    high = (finite_count // 2)[:, None]
    middle = (np.take_along_axis(ordered, low, 1) + np.take_along_axis(ordered, high, 1)) / 2.0
    return np.where(finite_count > 0, middle[:, 0], np.nan)


def normalise_triplets(stamps: np.ndarray) -> np.ndarray:
    """Model input from `[N, 3, S, S]` raw stamps (new, reference, difference).

    Each stamp has its median removed and is divided by its robust noise (MAD_TO_SIGMA x the median
    absolute deviation; the standard deviation where that is 0; 1 where both are, or with fewer
    than `MIN_FINITE_FOR_NOISE` finite pixels), so depth, gain and exposure do not matter, then
    compressed with asinh; NaN (off the image) becomes 0. All stamps at once: a 4096² search
    normalises ~800 triplets.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    rows = stamps.reshape(-1, stamps.shape[-2] * stamps.shape[-1])
    finite_count = np.isfinite(rows).sum(axis=1)
    median = _row_medians(rows, finite_count)
    deviation = np.abs(rows - median[:, None])
    sigma = MAD_TO_SIGMA * _row_medians(deviation, finite_count)
    flat = sigma <= 0
    if flat.any():
        sigma[flat] = np.nanstd(rows[flat], axis=1)
    usable = (finite_count >= MIN_FINITE_FOR_NOISE) & (sigma > 0)
    sigma = np.where(usable, sigma, 1.0)
    scaled = (rows - median[:, None]) / sigma[:, None]
    out = np.nan_to_num(np.arcsinh(scaled / 3.0), nan=0.0)
    return out.reshape(stamps.shape).astype(np.float32)


class RealBogusModel:
    """A verified TorchScript real/bogus model, scoring triplets on the CPU."""

    def __init__(self, module: torch.jit.ScriptModule, manifest: RealBogusManifest) -> None:
        self.released = module  # as exported and verified: its weights start a fine-tune
        self.module = inference_ready(module)
        self.manifest = manifest

    @classmethod
    def load(
        cls, model_dir: Path = SHIPPED_REALBOGUS_MODEL_DIR, release_public_key: str | None = None
    ) -> Self:
        """Load and verify a version folder, or the highest version in a repository folder;
        with `release_public_key`, only one signed by it (`imaging.model_signature`)."""
        version_dir = _version_dir(Path(model_dir))
        if release_public_key is not None:
            try:
                verify_version(version_dir, release_public_key)
            except ModelSignatureError as exc:
                raise RealBogusLoadError(str(exc)) from exc
        manifest_path = version_dir / MANIFEST_FILE
        try:
            manifest = RealBogusManifest.model_validate_json(manifest_path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise RealBogusLoadError(f"{manifest_path}: unusable manifest ({exc})") from exc
        weights = version_dir / MODEL_FILE
        actual = sha256_of_file(weights)
        if actual != manifest.sha256:
            raise RealBogusLoadError(
                f"{weights}: sha256 {actual} does not match the manifest's {manifest.sha256}"
            )
        if manifest.normalisation_version != NORMALISATION_VERSION:
            raise RealBogusLoadError(
                f"{version_dir}: model expects normalisation {manifest.normalisation_version!r}, "
                f"this site makes {NORMALISATION_VERSION!r}"
            )
        return cls(torch.jit.load(str(weights), map_location="cpu"), manifest)

    @property
    def ref(self) -> ModelRef:
        """The model's identity as it goes on the wire."""
        return ModelRef(
            name=self.manifest.name, version=self.manifest.version, sha256=self.manifest.sha256
        )

    def score(self, stamps: np.ndarray) -> np.ndarray:
        """Probability of being real for each raw triplet `[N, 3, 31, 31]`."""
        if len(stamps) == 0:
            return np.zeros(0)
        scores = []
        with torch.inference_mode():
            for start in range(0, len(stamps), SCORE_BATCH):
                inputs = torch.from_numpy(normalise_triplets(stamps[start : start + SCORE_BATCH]))
                logits = self.module(inputs)
                scores.append(torch.softmax(logits.double(), dim=1)[:, 1].numpy())
        return np.concatenate(scores)


def _version_dir(model_dir: Path) -> Path:
    if (model_dir / MODEL_FILE).is_file():
        return model_dir
    versions = (
        sorted(
            (c for c in model_dir.iterdir() if c.is_dir() and c.name.isdigit()),
            key=lambda c: int(c.name),
        )
        if model_dir.is_dir()
        else []
    )
    if not versions:
        raise RealBogusLoadError(f"{model_dir}: no {MODEL_FILE} here nor in a version folder")
    return versions[-1]


def write_realbogus_model(module: torch.nn.Module, version_dir: Path, version: str) -> Path:
    """Script `module` into `version_dir/model.pt` with its manifest; return the folder."""
    scripted = torch.jit.script(module.eval())
    version_dir.mkdir(parents=True, exist_ok=True)
    weights = version_dir / MODEL_FILE
    scripted.save(str(weights))
    manifest = RealBogusManifest(version=version, sha256=sha256_of_file(weights))
    (version_dir / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return version_dir

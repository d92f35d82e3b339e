"""The exported quality model at a site: its manifest, verified loading, and in-process scoring.

A model version is a folder holding `model.pt` (TorchScript, input `[N, 1, 128, 128]` float32,
output `[N, 3]` logits or probabilities over good, medium, bad) and `manifest.json` (a
`ModelManifest`: name, version, the sha256 of `model.pt`, class names, preprocessing version).
The default repository, `imaging/models/quality/`, has Triton's layout
(`config.pbtxt`, `1/model.pt`, `1/manifest.json`, ...); `QualityModel.load` takes either such a
repository (and uses its highest version) or a version folder itself.

Loading refuses a model whose file does not match the manifest's sha256, whose classes are not
the contract's, or that was trained on a different preprocessing. `write_model` is the one way to
produce a version folder, used by the export step of training and by tests.
"""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imaging.fits_reader import sha256_of_file
from imaging.model_signature import ModelSignatureError, verify_version
from imaging.preprocess import INPUT_SHAPE, PREPROCESS_VERSION
from protos import ModelRef, QualityLabel
from protos.base import Sha256

MODEL_FILE = "model.pt"
logger = logging.getLogger(__name__)
MANIFEST_FILE = "manifest.json"
CLASS_NAMES = tuple(label.value for label in QualityLabel)


class ModelManifest(BaseModel):
    """What a model version is, written next to its `model.pt`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    sha256: Sha256 = Field(description="SHA-256 of model.pt.")
    class_names: tuple[str, ...] = CLASS_NAMES
    preprocess_version: str = PREPROCESS_VERSION
    input_shape: tuple[int, int, int] = INPUT_SHAPE
    outputs: Literal["logits", "probabilities"] = "logits"

    @field_validator("class_names")
    @classmethod
    def _contract_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value != CLASS_NAMES:
            raise ValueError(f"class names must be {list(CLASS_NAMES)}, got {list(value)}")
        return value

    @field_validator("input_shape")
    @classmethod
    def _contract_input(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if value != INPUT_SHAPE:
            raise ValueError(f"input shape must be {list(INPUT_SHAPE)}, got {list(value)}")
        return value


class ModelLoadError(Exception):
    """A model folder that cannot be used: missing files, bad manifest, sha256 mismatch."""


class QualityModel:
    """A verified TorchScript quality model on CUDA when available, else on the CPU."""

    def __init__(self, module: torch.jit.ScriptModule, manifest: ModelManifest) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.module = inference_ready(module.to(self.device))
        self.manifest = manifest

    @classmethod
    def load(cls, model_dir: Path, release_public_key: str | None = None) -> Self:
        """Load and verify the model in a version folder or a Triton-style repository; with
        `release_public_key`, only a version signed by that key (`imaging.model_signature`)."""
        version_dir = model_version_dir(Path(model_dir))
        if release_public_key is not None:
            try:
                verify_version(version_dir, release_public_key)
            except ModelSignatureError as exc:
                raise ModelLoadError(str(exc)) from exc
        manifest = read_manifest(version_dir)
        weights = version_dir / MODEL_FILE
        actual = sha256_of_file(weights)
        if actual != manifest.sha256:
            raise ModelLoadError(
                f"{weights}: sha256 {actual} does not match the manifest's {manifest.sha256}; "
                "refusing to load a model that is not the one released"
            )
        if manifest.preprocess_version != PREPROCESS_VERSION:
            raise ModelLoadError(
                f"{version_dir}: model expects preprocessing {manifest.preprocess_version!r}, "
                f"this site runs {PREPROCESS_VERSION!r}"
            )
        try:
            with _torchscript_is_intended():
                module = torch.jit.load(str(weights), map_location="cpu")
        except RuntimeError as exc:
            raise ModelLoadError(f"{weights}: not a TorchScript model ({exc})") from exc
        return cls(module, manifest)

    @property
    def ref(self) -> ModelRef:
        """The model's identity as it goes on the wire."""
        return ModelRef(
            name=self.manifest.name, version=self.manifest.version, sha256=self.manifest.sha256
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities `[N, 3]` (float64, rows sum to 1) for a batch `[N, 1, 128, 128]`."""
        if batch.ndim != 4 or batch.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"expected a batch [N, 1, 128, 128], got {list(batch.shape)}")
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            scores = self.module(inputs).to(torch.float64)
            if self.manifest.outputs == "logits":
                scores = torch.softmax(scores, dim=1)
        probabilities = scores.cpu().numpy()
        return probabilities / probabilities.sum(axis=1, keepdims=True)


def inference_ready(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """`module` in eval mode, frozen (weights become constants, BatchNorm folds into the
    convolutions) and optimised for inference: the same outputs within float rounding (1e-5),
    4x faster on two CPU cores for the eight-view quality model (20 -> 4.5 ms a frame). A module
    that cannot be frozen is used as it is."""
    module = module.eval()
    try:
        return torch.jit.optimize_for_inference(torch.jit.freeze(module))
    except RuntimeError as exc:
        logger.warning("model not optimised for inference (%s); running it as exported", exc)
        return module


def model_version_dir(model_dir: Path) -> Path:
    """The folder holding `model.pt`: `model_dir` itself, or its highest numbered version."""
    if (model_dir / MODEL_FILE).is_file():
        return model_dir
    versions = (
        sorted(
            (child for child in model_dir.iterdir() if child.name.isdigit() and child.is_dir()),
            key=lambda child: int(child.name),
        )
        if model_dir.is_dir()
        else []
    )
    if not versions or not (versions[-1] / MODEL_FILE).is_file():
        raise ModelLoadError(
            f"{model_dir}: no {MODEL_FILE} here nor in a numbered version folder "
            "(train and export a model first: `skyfleet train`)"
        )
    return versions[-1]


def read_manifest(version_dir: Path) -> ModelManifest:
    """The manifest of a version folder."""
    path = version_dir / MANIFEST_FILE
    try:
        return ModelManifest.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the manifest ({exc.strerror})") from exc
    except ValidationError as exc:
        raise ModelLoadError(f"{path}: invalid manifest: {exc}") from exc


def write_model(
    module: torch.nn.Module,
    version_dir: Path,
    *,
    name: str,
    version: str,
    outputs: Literal["logits", "probabilities"] = "logits",
) -> ModelManifest:
    """Script `module` (in eval mode) into `version_dir/model.pt` and write its manifest."""
    with _torchscript_is_intended():
        scripted = (
            module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
        )
    version_dir.mkdir(parents=True, exist_ok=True)
    weights = version_dir / MODEL_FILE
    scripted.eval().save(str(weights))
    manifest = ModelManifest(
        name=name, version=version, sha256=sha256_of_file(weights), outputs=outputs
    )
    (version_dir / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


@contextmanager
def _torchscript_is_intended() -> Iterator[None]:
    """Silence torch's TorchScript deprecation: Triton's PyTorch backend loads TorchScript."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        yield

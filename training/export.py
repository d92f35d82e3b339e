"""Exporting a trained quality model into a versioned Triton model repository.

    <repository>/<name>/config.pbtxt           python backend, input "input" FP32 [-1, 1, 128, 128],
                                               output "probabilities" FP32 [-1, 3]
    <repository>/<name>/<version>/model.pt     TorchScript (what sites and Triton load)
    <repository>/<name>/<version>/model.onnx   ONNX (opset 20), for other runtimes
    <repository>/<name>/<version>/model.py     the python-backend entry point
    <repository>/<name>/<version>/manifest.json  `ModelManifest`: name, version, sha256, classes

`model.pt` and its manifest are written by the site's own `write_model`, so the export and the
loader share one definition. Both exports are checked against the eager model on a batch of
frames before anything is published, and a version folder appears in one atomic rename, so a
Triton polling the repository never sees half a model. Without a version number the next free
one is taken (`training.versions`: reserved, so two runs never take the same one); with a release
key's seed the version is signed (`imaging.model_signature`) before it appears. Sites and
Triton's `model.py` verify `model.pt` against the manifest's sha256 before use.
"""

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.reference import ReferenceEvaluator
from pydantic import BaseModel

from imaging.fits_reader import sha256_of_file
from imaging.model_signature import SIGNATURE_FILE, sign_version
from imaging.quality_model import MANIFEST_FILE, MODEL_FILE, write_model
from imaging.triton_layout import CONFIG_FILE, PYTHON_MODEL_FILE, TRITON_PYTHON_MODEL
from training.triton.repository import render_python_backend_config
from training.versions import VersionTakenError, publish_version, reserved_version

ONNX_FILE = "model.onnx"
INPUT_NAME = "input"
LOGITS_NAME = "logits"
MAX_BATCH_SIZE = 64
ONNX_OPSET = 20
TORCHSCRIPT_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that does not reproduce the eager model, or would overwrite a release (or one
    another run is releasing)."""


class ExportedModel(BaseModel):
    """Where an exported version lies and how closely each export matches the eager model."""

    version: int
    version_dir: Path
    torchscript_path: Path
    onnx_path: Path
    manifest_path: Path
    config_path: Path
    torchscript_sha256: str
    onnx_sha256: str
    torchscript_max_difference: float
    onnx_max_difference: float
    signature_path: Path | None = None


def eager_logits(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """The eager model's logits for a batch, in eval mode."""
    with torch.no_grad():
        return model.eval()(torch.from_numpy(batch)).numpy()


def torchscript_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    """Logits of a saved TorchScript model for a batch."""
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        return loaded(torch.from_numpy(batch)).numpy()


def export_onnx(model: torch.nn.Module, path: Path, example: np.ndarray) -> Path:
    """Export to ONNX with torch.export (dynamo) and a dynamic batch axis; return the path."""
    program = torch.onnx.export(
        model.cpu().eval(),
        (torch.from_numpy(example),),
        input_names=[INPUT_NAME],
        output_names=[LOGITS_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=ONNX_OPSET,
        dynamo=True,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export gave no ONNX program")
    program.save(str(path), external_data=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def onnx_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    """Logits of a saved ONNX model, run by onnx's reference evaluator."""
    (logits,) = ReferenceEvaluator(str(path)).run(None, {INPUT_NAME: batch})
    return np.asarray(logits)


def _checked(name: str, reference: np.ndarray, exported: np.ndarray, tolerance: float) -> float:
    """The largest |difference| between two logit arrays; ExportError above `tolerance`."""
    difference = float(np.max(np.abs(reference - exported)))
    if exported.shape != reference.shape or difference > tolerance:
        raise ExportError(
            f"{name} export differs from the eager model: shape {exported.shape} vs "
            f"{reference.shape}, max |difference| {difference:.2e} > {tolerance:.0e}"
        )
    return difference


def export_to_repository(
    model: torch.nn.Module,
    repository: Path,
    version: int | None,
    verification_batch: np.ndarray,
    name: str = "quality",
    sign_with: str | None = None,
    first_version: int = 1,
) -> ExportedModel:
    """Export `model` as `<repository>/<name>/<version>/` and (re)write the model's config.

    `version` None takes the next free version (never below `first_version`).
    `verification_batch` ([N, 1, 128, 128] float32, real frames if possible) is what both
    exports must reproduce. An existing version is never overwritten. `sign_with`, a release
    key's seed, signs the version before it is published.
    """
    model_dir = repository / name
    reference = eager_logits(model, verification_batch)
    try:
        with reserved_version(model_dir, version, first_version) as chosen:
            version_dir = model_dir / str(chosen)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{chosen}-", dir=model_dir))
            try:
                differences = _write_checked(
                    model, staging, name, chosen, verification_batch, reference
                )
                if sign_with is not None:
                    sign_version(staging, sign_with)
                publish_version(staging, version_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except VersionTakenError as exc:
        raise ExportError(str(exc)) from exc
    config_path = model_dir / CONFIG_FILE
    config_path.write_text(
        render_python_backend_config(name, max_batch_size=MAX_BATCH_SIZE, instance_kind="KIND_CPU")
    )
    signature = version_dir / SIGNATURE_FILE
    return ExportedModel(
        version=chosen,
        version_dir=version_dir,
        torchscript_path=version_dir / MODEL_FILE,
        onnx_path=version_dir / ONNX_FILE,
        manifest_path=version_dir / MANIFEST_FILE,
        config_path=config_path,
        torchscript_sha256=sha256_of_file(version_dir / MODEL_FILE),
        onnx_sha256=sha256_of_file(version_dir / ONNX_FILE),
        torchscript_max_difference=differences[0],
        onnx_max_difference=differences[1],
        signature_path=signature if signature.is_file() else None,
    )


def _write_checked(
    model: torch.nn.Module,
    staging: Path,
    name: str,
    version: int,
    verification_batch: np.ndarray,
    reference: np.ndarray,
) -> tuple[float, float]:
    """Write TorchScript, ONNX and the Triton entry into `staging`, each checked against the
    eager model's logits; the largest TorchScript and ONNX differences."""
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated, but it is what sites and Triton's PyTorch
        # backend load without Python model code: keep using it deliberately.
        warnings.filterwarnings("ignore", ".*torch.jit.script.*", DeprecationWarning)
        write_model(model.cpu().eval(), staging, name=name, version=str(version))
    torchscript_difference = _checked(
        "TorchScript",
        reference,
        torchscript_logits(staging / MODEL_FILE, verification_batch),
        TORCHSCRIPT_TOLERANCE,
    )
    onnx_file = export_onnx(model, staging / ONNX_FILE, verification_batch[:1])
    onnx_difference = _checked(
        "ONNX", reference, onnx_logits(onnx_file, verification_batch), ONNX_TOLERANCE
    )
    shutil.copyfile(TRITON_PYTHON_MODEL, staging / PYTHON_MODEL_FILE)
    return torchscript_difference, onnx_difference

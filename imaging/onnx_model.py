"""The quality model run by ONNX Runtime: `OnnxQualityModel`, with `QualityModel`'s interface
(`load`, `predict`, `ref`, `manifest`), for edge computers where ONNX Runtime's TensorRT or CUDA
execution providers score faster, or in less memory, than TorchScript.

A version folder that training exported holds `model.onnx` beside `model.pt` (the same network:
input `input` float32 `[N, 1, 128, 128]`, dynamic batch; output `logits` `[N, 3]`;
`training/export.py` checks it against the eager model before release). The manifest names the
classes, the preprocessing and whether the output is logits; it records the sha256 of `model.pt`
only, so `model.onnx` is verified against a sha256 given to `load` (or kept beside it in
`model.onnx.sha256`), and `agrees_with` checks it against the verified TorchScript model, which
is how a site that trusts the manifest trusts the ONNX file (`docs/jetson.md`).

Execution providers, best first, among those this ONNX Runtime build has: TensorRT (FP32, its
engines cached in `cache_dir` when given: building them takes minutes on a Jetson), CUDA, CPU.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from imaging.fits_reader import sha256_of_file
from imaging.preprocess import INPUT_SHAPE, PREPROCESS_VERSION
from imaging.quality_model import ModelLoadError, ModelManifest, read_manifest
from protos import ModelRef

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SHA256_SUFFIX = ".sha256"
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
MAX_BATCH = 64
"""The largest batch TensorRT's engine is built for (Triton's max_batch_size is the same)."""
AGREEMENT_TOLERANCE = 1e-4
"""Largest |difference| of probabilities between the ONNX and the TorchScript model."""


def onnx_version_dir(model_dir: Path) -> Path:
    """The folder holding `model.onnx`: `model_dir` itself, or its highest numbered version."""
    if (model_dir / ONNX_FILE).is_file():
        return model_dir
    versions = sorted(
        (c for c in model_dir.iterdir() if c.name.isdigit() and c.is_dir())
        if model_dir.is_dir()
        else [],
        key=lambda c: int(c.name),
    )
    if not versions or not (versions[-1] / ONNX_FILE).is_file():
        raise ModelLoadError(
            f"{model_dir}: no {ONNX_FILE} here nor in its newest version folder "
            "(training exports one beside model.pt: `skyfleet train quality`)"
        )
    return versions[-1]


def available_providers(preferred: Sequence[str] = PREFERRED_PROVIDERS) -> list[str]:
    """The preferred execution providers this ONNX Runtime build has, in order."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [p for p in preferred if p in have]


def _provider_options(provider: str, cache_dir: Path | None) -> dict[str, Any]:
    if provider != "TensorrtExecutionProvider":
        return {}
    shape = "x".join(str(side) for side in INPUT_SHAPE)
    options: dict[str, Any] = {
        "trt_fp16_enable": False,  # the probabilities must stay TorchScript's
        "trt_profile_min_shapes": f"input:1x{shape}",
        "trt_profile_opt_shapes": f"input:1x{shape}",
        "trt_profile_max_shapes": f"input:{MAX_BATCH}x{shape}",
    }
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir)}
    return options


class OnnxQualityModel:
    """A quality model scored by ONNX Runtime, interchangeable with `QualityModel`."""

    def __init__(self, session: Any, manifest: ModelManifest, *, sha256: str, path: Path) -> None:
        self.session = session
        self.manifest = manifest
        self.sha256 = sha256
        self.path = path
        self.input_name = session.get_inputs()[0].name
        self.providers: list[str] = list(session.get_providers())

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        expected_sha256: str | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
        cpu_memory_arena: bool = False,
    ) -> Self:
        """Load `model.onnx` of a version folder or a Triton-style repository (its newest
        version), after checking the manifest beside it and, when known (`expected_sha256`, or a
        `model.onnx.sha256` file), the file's sha256. `providers` defaults to the best this build
        of ONNX Runtime has; `threads` sets the CPU provider's intra-op threads.

        ONNX Runtime's CPU memory arena is off by default: with it a batch of 32 kept ~850 MiB
        more resident (measured: 963 against 115 MiB, for 79 against 51 images/s on one core),
        which an 8 GB Jetson sharing its memory with the GPU cannot spare."""
        import onnxruntime as ort

        version_dir = onnx_version_dir(Path(model_dir))
        manifest = read_manifest(version_dir)
        if manifest.preprocess_version != PREPROCESS_VERSION:
            raise ModelLoadError(
                f"{version_dir}: model expects preprocessing {manifest.preprocess_version!r}, "
                f"this site runs {PREPROCESS_VERSION!r}"
            )
        path = version_dir / ONNX_FILE
        actual = sha256_of_file(path)
        recorded = path.with_name(ONNX_FILE + SHA256_SUFFIX)
        if expected_sha256 is None and recorded.is_file():
            expected_sha256 = recorded.read_text().split()[0]
        if expected_sha256 is not None and actual != expected_sha256:
            raise ModelLoadError(
                f"{path}: sha256 {actual} is not the expected {expected_sha256}; "
                "refusing to load a model that is not the one released"
            )
        chosen = list(providers) if providers is not None else available_providers()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = cpu_memory_arena
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=[(p, _provider_options(p, cache_dir)) for p in chosen],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
        model = cls(session, manifest, sha256=actual, path=path)
        log.info(
            "onnx model loaded name=%s version=%s providers=%s sha256=%s",
            manifest.name,
            manifest.version,
            ",".join(model.providers),
            actual[:12],
        )
        return model

    @property
    def ref(self) -> ModelRef:
        """The model's identity on the wire: the manifest's name and version, and the sha256 of
        the file that really scores (`model.onnx`)."""
        return ModelRef(name=self.manifest.name, version=self.manifest.version, sha256=self.sha256)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities `[N, 3]` (float64, rows sum to 1) for a batch `[N, 1, 128, 128]`."""
        if batch.ndim != 4 or batch.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"expected a batch [N, 1, 128, 128], got {list(batch.shape)}")
        inputs = np.ascontiguousarray(batch, dtype=np.float32)
        (scores,) = self.session.run(None, {self.input_name: inputs})
        scores = np.asarray(scores, dtype=np.float64)
        if self.manifest.outputs == "logits":
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def agrees_with(
        self,
        reference: Any,
        batch: np.ndarray | None = None,
        tolerance: float = AGREEMENT_TOLERANCE,
    ) -> float:
        """Check that this model scores as `reference` (a verified `QualityModel`) does, on
        `batch` or on a fixed batch of its own; returns the largest difference of probabilities,
        raises ModelLoadError above `tolerance`."""
        if batch is None:
            batch = np.random.default_rng(20261203).normal(0.0, 0.5, size=(4, *INPUT_SHAPE))
        difference = float(np.max(np.abs(self.predict(batch) - reference.predict(batch))))
        if not difference <= tolerance:
            raise ModelLoadError(
                f"{self.path}: scores differ from the TorchScript model by {difference:.2e} "
                f"(more than {tolerance:.0e}): not the same network"
            )
        return difference

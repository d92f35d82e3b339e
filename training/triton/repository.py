"""Build a Triton serving repository from an exported quality model.

An exported model folder (what training writes, and what ships in `imaging/models/quality/`)
holds `config.pbtxt`, a manifest and `<version>/model.pt` (TorchScript). The serving repository
this module builds is the standard Triton layout for the python backend:

    <repository>/<name>/config.pbtxt            backend "python", input "input" [1,128,128] FP32,
                                                output "probabilities" [3] FP32, dynamic batching
    <repository>/<name>/<version>/model.pt      the exported TorchScript file, byte for byte
    <repository>/<name>/<version>/manifest.json its manifest (name, version, sha256, classes)
    <repository>/<name>/<version>/model.py      imaging/triton_python_model.py

The model is verified as a site would load it before anything is written (sha256 against the
manifest, classes, preprocessing version), and its sha256 again by `model.py` inside Triton when
the model loads. The same version folder is what a production Triton's PyTorch backend loads
(`model.pt`); only `config.pbtxt` differs there (see docs/triton.md). The version policy serves
the two newest versions, the serving one and the one before: a site that installs releases into
its Triton loads a new version beside the serving one (`site_agent.triton_release`).
"""

import shutil
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from imaging.quality_model import ModelLoadError, QualityModel, model_version_dir
from imaging.triton_layout import CONFIG_FILE, place_version

InstanceKind = Literal["KIND_CPU", "KIND_GPU"]


class ServingModel(BaseModel):
    """One model placed in a serving repository, as Triton will load it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository: Path
    name: str
    version: int = Field(ge=1)
    sha256: str
    instance_kind: InstanceKind
    max_batch_size: int = Field(ge=1)

    @property
    def model_dir(self) -> Path:
        return self.repository / self.name


def render_python_backend_config(
    name: str, *, max_batch_size: int, instance_kind: InstanceKind, instances: int = 1
) -> str:
    """`config.pbtxt` for the python backend serving the quality classifier."""
    return f"""name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [
  {{ name: "input", data_type: TYPE_FP32, dims: [ 1, 128, 128 ] }}
]
output [
  {{ name: "probabilities", data_type: TYPE_FP32, dims: [ 3 ] }}
]
instance_group [
  {{ count: {instances}, kind: {instance_kind} }}
]
dynamic_batching {{
  max_queue_delay_microseconds: 500
}}
version_policy: {{ latest: {{ num_versions: 2 }} }}
"""


def _triton_version(version_dir: Path, manifest_version: str) -> int:
    """Triton numbers versions: the version folder's name, else the manifest's version."""
    for candidate in (version_dir.name, manifest_version):
        if candidate.isdigit() and int(candidate) >= 1:
            return int(candidate)
    raise ModelLoadError(
        f"{version_dir}: Triton needs a numbered version folder, got {version_dir.name!r} "
        f"(manifest version {manifest_version!r})"
    )


def build_serving_repository(
    model_dir: Path,
    repository: Path,
    *,
    max_batch_size: int = 64,
    use_gpu: bool | None = None,
) -> ServingModel:
    """Place the exported model in `model_dir` into `repository` for Triton's python backend.

    `model_dir` is an exported repository (its highest version is served) or a version folder.
    The model is verified as a site would load it (`QualityModel.load`: sha256, classes,
    preprocessing), so a model the sites would refuse is never served; `ModelLoadError` says why.
    `use_gpu=None` serves on a GPU when this machine has CUDA. Replaces an earlier copy of the
    same model in `repository`.
    """
    version_dir = model_version_dir(model_dir)
    manifest = QualityModel.load(version_dir).manifest
    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    served = ServingModel(
        repository=repository.resolve(),
        name=manifest.name,
        version=_triton_version(version_dir, manifest.version),
        sha256=manifest.sha256,
        instance_kind="KIND_GPU" if use_gpu else "KIND_CPU",
        max_batch_size=max_batch_size,
    )
    if served.model_dir.exists():
        shutil.rmtree(served.model_dir)
    place_version(version_dir, served.model_dir / str(served.version))
    (served.model_dir / CONFIG_FILE).write_text(
        render_python_backend_config(
            served.name, max_batch_size=max_batch_size, instance_kind=served.instance_kind
        )
    )
    return served

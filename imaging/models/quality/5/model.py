"""Triton python-backend `model.py`: serves the exported TorchScript quality classifier.

This file is copied verbatim into each version folder of a serving repository
(`<repo>/<model>/<version>/model.py`) and runs inside Triton's python-backend stub, never in
Skyfleet's own processes (it lives in the pixel library because both the export for Triton and a
site installing a release write it, `imaging.triton_layout`; nothing imports it). At load it
checks that `model.pt`'s sha256 equals the one in the manifest beside it and refuses the model
otherwise; it runs on CUDA when the instance is a GPU instance and CUDA is available, else on
the CPU. Each `execute` call scores the whole dynamic batch of requests in one forward pass and
answers per-class probabilities (softmax of the logits, unless the manifest says the export
already ends in a softmax). A few warm-up passes at load keep TorchScript's profiling runs off
the first requests.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack

WEIGHTS_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
INPUT_NAME = "input"
INPUT_SHAPE = (1, 128, 128)
OUTPUT_NAME = "probabilities"
_CHUNK_BYTES = 1 << 20


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class TritonPythonModel:
    """The model object Triton's python backend instantiates once per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = json.loads((version_dir / MANIFEST_FILE).read_text())
        weights = version_dir / WEIGHTS_FILE
        actual_sha256 = _sha256_of(weights)
        if actual_sha256 != manifest["sha256"]:
            raise pb_utils.TritonModelException(
                f"refusing {weights}: sha256 {actual_sha256} does not match the manifest's "
                f"{manifest['sha256']}"
            )
        wants_gpu = args.get("model_instance_kind") == "GPU"
        self.device = torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            self.device = torch.device("cuda", int(args.get("model_instance_device_id", "0")))
        self.model = torch.jit.load(str(weights), map_location=self.device).eval()
        self.outputs_probabilities = manifest.get("outputs") == "probabilities"
        self._warm_up()
        pb_utils.Logger.log_info(
            f"loaded {manifest['name']} {manifest['version']} sha256={actual_sha256[:12]} "
            f"device={self.device}"
        )

    def _warm_up(self) -> None:
        """Run the TorchScript profiling passes now, not on the first site's request."""
        with torch.inference_mode():
            for batch_size in (1, 1, 2, 2):
                self.model(torch.zeros((batch_size, *INPUT_SHAPE), device=self.device))

    def execute(self, requests: list[Any]) -> list[Any]:
        inputs = [
            from_dlpack(pb_utils.get_input_tensor_by_name(r, INPUT_NAME).to_dlpack())
            for r in requests
        ]
        sizes = [int(t.shape[0]) for t in inputs]
        with torch.inference_mode():
            batch = torch.cat(inputs).to(self.device, torch.float32)
            scores = self.model(batch)
            if not self.outputs_probabilities:
                scores = torch.softmax(scores, dim=1)
            scores = scores.to(torch.float32).contiguous()
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor.from_dlpack(OUTPUT_NAME, to_dlpack(part.contiguous()))
                ]
            )
            for part in torch.split(scores, sizes)
        ]

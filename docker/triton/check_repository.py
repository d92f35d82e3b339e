"""Lay out and check the Triton model repository baked into skyfleet-triton (run at build time).

Usage: python check_repository.py REPOSITORY MODEL_PY GPU_CONFIG

Every version folder of every model gets the python backend's `model.py` (imaging/
triton_python_model.py, so the image serves with the code the tests ran) and must hold a `model.pt`
whose sha256 is the manifest's; the GPU configuration goes to `<model>/configs/gpu.pbtxt`, which
Triton loads with `--model-config-name=gpu`. Standard library only: the build stage has no
Skyfleet installed.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main(repository: Path, model_py: Path, gpu_config: Path) -> None:
    models = [d for d in repository.iterdir() if (d / "config.pbtxt").is_file()]
    if not models:
        raise SystemExit(f"{repository}: no model (no <model>/config.pbtxt)")
    for model in models:
        versions = [d for d in model.iterdir() if d.is_dir() and d.name.isdigit()]
        if not versions:
            raise SystemExit(f"{model}: no numbered version folder")
        for version in versions:
            manifest = json.loads((version / "manifest.json").read_text())
            actual = sha256_of(version / "model.pt")
            if actual != manifest["sha256"]:
                raise SystemExit(f"{version}/model.pt: sha256 {actual} is not the manifest's")
            shutil.copyfile(model_py, version / "model.py")
        (model / "configs").mkdir(exist_ok=True)
        shutil.copyfile(gpu_config, model / "configs" / "gpu.pbtxt")
        print(f"{model.name}: versions {sorted(int(v.name) for v in versions)}")


if __name__ == "__main__":
    main(*(Path(argument) for argument in sys.argv[1:4]))

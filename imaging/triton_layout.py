"""One model version laid out in a Triton model repository for the python backend.

`<repository>/<model>/<version>/` holds `model.pt` (the released TorchScript file, byte for
byte), `manifest.json` and `model.py` (`imaging/triton_python_model.py`, which checks the sha256
again inside Triton). `place_version` is the one way to write such a folder: the export for
Triton (`training.triton.repository`) and a site installing a release into its local Triton
(`site_agent.triton_release`) both use it. The folder is written beside its place and renamed
in, so Triton never loads a half-written version. Pure file work: no Triton, no torch.
"""

import shutil
import tempfile
from pathlib import Path

from imaging.quality_model import MANIFEST_FILE, MODEL_FILE

TRITON_PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")
PYTHON_MODEL_FILE = "model.py"
CONFIG_FILE = "config.pbtxt"


def place_version(source: Path, target: Path) -> None:
    """Copy the verified version folder `source` to `target` (`<repo>/<model>/<version>`),
    replacing what was there; `OSError` when the repository cannot be written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".incoming-{target.name}-", dir=target.parent))
    try:
        for name in (MODEL_FILE, MANIFEST_FILE):
            shutil.copyfile(source / name, staging / name)
        shutil.copyfile(TRITON_PYTHON_MODEL, staging / PYTHON_MODEL_FILE)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a server run as another user
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def version_folders(model_dir: Path) -> list[str]:
    """The numbered version folders of a model in a Triton repository, lowest first."""
    if not model_dir.is_dir():
        return []
    found = [child.name for child in model_dir.iterdir() if child.is_dir() and child.name.isdigit()]
    return sorted(found, key=int)

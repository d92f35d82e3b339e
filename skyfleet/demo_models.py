"""The demo fleet's models: the shipped ones, copied and signed with the demo's release key, as
a fleet's release step would, so the demo's sites load only signed models (docs/identity.md)."""

import shutil
from pathlib import Path
from typing import Any, NamedTuple

from imaging.model_signature import sign_version
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR, SHIPPED_REALBOGUS_MODEL_DIR


class SignedModels(NamedTuple):
    """The shipped models, copied and signed with the demo fleet's release key."""

    quality_dir: Path
    realbogus_dir: Path
    release_public_key: str

    def settings(self) -> dict[str, Any]:
        return {
            "model_dir": self.quality_dir,
            "realbogus_model_dir": self.realbogus_dir,
            "release_public_key": self.release_public_key,
        }


def signed_shipped_models(folder: Path, release_seed: str, release_public_key: str) -> SignedModels:
    """Copy the shipped models' served versions into `folder` and sign them."""
    copies = []
    for repository in (SHIPPED_QUALITY_MODEL_DIR, SHIPPED_REALBOGUS_MODEL_DIR):
        served = max(
            (d for d in repository.iterdir() if d.name.isdigit()), key=lambda d: int(d.name)
        )
        copy = folder / repository.name / served.name
        if not copy.exists():
            shutil.copytree(served, copy)
        sign_version(copy, release_seed)
        copies.append(copy)
    return SignedModels(copies[0], copies[1], release_public_key)

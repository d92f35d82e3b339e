"""Model repositories for release tests: the shipped quality model as version 5, the same
weights released again as version 6, and a version 7 that calls every frame bad; all signed with
a fleet's release key. And a feeder that keeps site agents busy with simulated frames."""

import asyncio
import shutil
from pathlib import Path

import torch
from torch import nn

from fleetbus.server import EmbeddedNats
from imaging.model_signature import SIGNATURE_FILE, sign_version
from imaging.quality_model import MANIFEST_FILE, read_manifest, write_model
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from protos import QualityLabel
from site_agent.agent import SiteAgent
from site_agent.learning_settings import RolloutSettings, SampleSettings
from site_agent.settings import SiteAgentSettings
from tests.site_agents import simulated_frames, site_settings


class AlwaysBad(nn.Module):
    """A quality network that calls every frame bad (a broken retraining)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.tensor([-4.0, -4.0, 4.0])
        return logits.expand(x.shape[0], 3) + 0.0 * x.mean()


def release_site_settings(
    root: Path,
    site_id: str,
    hub: EmbeddedNats,
    repository: Path,
    public_key: str,
    rollout: RolloutSettings,
    **overrides: object,
) -> SiteAgentSettings:
    """A site agent of a release test: serving version 5 of `repository`, trusting the fleet's
    release key, no transient search and no samples (a release is what is watched)."""
    return site_settings(
        root,
        site_id,
        hub,
        model_dir=repository / "quality" / "5",
        release_public_key=public_key,
        search_transients=False,
        samples=SampleSettings(enabled=False),
        rollout=rollout,
        **overrides,
    )


def release_repository(root: Path, seed: str) -> Path:
    """A Triton-style repository `root/quality/{5,6,7}`, every version signed with `seed`."""
    shipped = SHIPPED_QUALITY_MODEL_DIR / "5"
    model_dir = root / "quality"
    shutil.copytree(shipped, model_dir / "5")
    (model_dir / "5" / SIGNATURE_FILE).unlink(missing_ok=True)
    again = model_dir / "6"
    again.mkdir(parents=True)
    shutil.copyfile(shipped / "model.pt", again / "model.pt")
    manifest = read_manifest(shipped).model_copy(update={"version": "6"})
    (again / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    write_model(AlwaysBad(), model_dir / "7", name="quality", version="7")
    for version in ("5", "6", "7"):
        sign_version(model_dir / version, seed)
    return root


async def keep_fed(agents: list[SiteAgent], written: dict[str, list[Path]]) -> None:
    """Give each agent a new (good) frame whenever it has none waiting, until cancelled; every
    frame is new (numbered on from those in `written`)."""
    count = sum(len(paths) for paths in written.values())
    while True:
        for agent in agents:
            if agent.status().queue_depth == 0:
                count += 1
                folder = agent.settings.watch_dir
                [(path, _)] = simulated_frames(folder, [QualityLabel.GOOD], seed=count)
                written.setdefault(agent.settings.site_id, []).append(path)
        await asyncio.sleep(0.2)

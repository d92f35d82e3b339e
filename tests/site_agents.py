"""Running site agents in tests: settings for a site under a test folder, an in-process agent
for the duration of a block or an agent process, and simulated frames written where a camera
would put them."""

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetbus.server import EmbeddedNats
from protos import QualityLabel
from site_agent.agent import SiteAgent
from site_agent.settings import SiteAgentSettings
from tests.conftest import SKYFLEET
from training.simulator import SimCamera
from training.simulator.dataset import simulate_labelled_frame
from training.simulator.fitsio import write_frame

SMALL_CAMERA = SimCamera(width_px=256, height_px=256)
NIGHT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def site_settings(
    root: Path, site_id: str, hub: EmbeddedNats | None, **overrides: Any
) -> SiteAgentSettings:
    """A site agent under `root/site_id` with an embedded leaf server connected to `hub`."""
    values: dict[str, Any] = {
        "site_id": site_id,
        "watch_dir": root / site_id / "incoming",
        "work_dir": root / site_id / "work",
        "hub_leaf_url": hub.config.leaf_url if hub else None,
        "heartbeat_interval_s": 1.0,
        "settle_s": 0.3,
        "incomplete_timeout_s": 2.0,  # a test's cut-short files are rejected soon
    }
    return SiteAgentSettings(**{**values, **overrides})


@asynccontextmanager
async def running_agent(settings: SiteAgentSettings) -> AsyncIterator[SiteAgent]:
    """An agent running in this event loop; stopped gracefully at the end of the block."""
    agent = SiteAgent(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    ready = asyncio.create_task(agent.wait_ready())
    await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why it failed to start
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def simulated_frames(
    folder: Path, labels: list[QualityLabel], *, seed: int = 0, camera: SimCamera = SMALL_CAMERA
) -> list[tuple[Path, QualityLabel]]:
    """Frames of the given true labels, written (renamed into place) into `folder`."""
    written = []
    for index, label in enumerate(labels):
        frame = simulate_labelled_frame(
            label,
            camera,
            seed=seed,
            index=index,
            date_obs=NIGHT + timedelta(minutes=2 * index),
        )
        path = write_frame(frame, folder / f"sim-{seed}-{index:04d}.fits")
        written.append((path, frame.truth.label))
    return written


async def wait_until(condition: Any, *, timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll `condition()` until it is true or `timeout_s` passed; returns its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(step_s)
    return True


def start_agent_process(
    settings: SiteAgentSettings, log_path: Path, *, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`skyfleet site run` as its own process (as an operator runs it), its output in `log_path`;
    with the site's `--hub-nkey-file` when the settings name one; `env`: its environment
    (default: this process's)."""
    args = [
        str(SKYFLEET),
        "site",
        "run",
        "--site-id",
        settings.site_id,
        "--watch",
        str(settings.watch_dir),
        "--work-dir",
        str(settings.work_dir),
        *(["--hub-leaf-url", settings.hub_leaf_url] if settings.hub_leaf_url else []),
        *(["--hub-nkey-file", str(settings.hub_nkey_file)] if settings.hub_nkey_file else []),
        "--heartbeat-interval",
        "1",
        "--settle",
        "0.3",
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

"""Release to fleet switch: how long a model release takes from the centre's `roll_out` to the
canary scoring with it, the canary's soak, and the whole fleet scoring with it; and a site's
install time (fetch, sha256, signature, load).

A real hub, two site agents with their own leaf servers (`east` the canary, `west` the fleet),
each fed a new simulated frame whenever it has none waiting, and the repository of the release
tests (`tests/model_releases.py`: the shipped quality model as version 5 and the same weights as
6, signed with a fleet key). The rollout (`training.release.roll_out`, canary healthy after
`HEALTHY_FRAMES` frames) goes 5 → 6 → 5 → 6 ... for `ROUNDS` rounds. The times come from the
messages at the hub: the canary's and the fleet's first `FrameScore` with the new version (its
`created_at`, stamped when the site scored the frame) and the `ModelRelease` the centre sent to
the fleet, against the moment `roll_out` was called. A switch waits for the next frame, so the
times include up to one frame's scoring. The install time is each site's `install` of a release,
timed around the model manager's call (fetch from a `file://` repository, sha256, signature,
TorchScript load). About a minute on 2 cores.
"""

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fleetbus.identity import FleetIdentities, issue_credentials
from fleetbus.tasks import cancel_and_wait
from protos import FrameScore, ModelRelease
from protos.base import utc_now
from protos.streams import COMMAND_STREAM
from site_agent.agent import SiteAgent
from site_agent.learning_settings import RolloutSettings
from tests.model_releases import keep_fed, release_repository, release_site_settings
from tests.site_agents import running_agent, wait_until
from tests.site_topology import hub_sourcing, running_hub, stored_messages
from training.release import RolloutPlan, roll_out

ROUNDS = 4
"""Releases measured (5 → 6 → 5 → 6): four switches each for canary and fleet, eight installs."""
HEALTHY_FRAMES = 5
"""Frames the canary scores with a release before the fleet gets it (the release test's soak;
a real fleet uses 25, the soak then scales with the site's frame cadence)."""
WATCH_FRAMES = 3
"""The sites' own drift window: below `HEALTHY_FRAMES`, as `roll_out` requires."""
SOAK_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0


def _timed_installs(agent: SiteAgent, seconds: list[float]) -> None:
    """Time every release the agent's model manager installs (appending to `seconds`)."""
    manager = agent.learning.models
    install: Callable[..., Awaitable[str]] = manager.install

    async def timed(*args: object, **kwargs: object) -> str:
        started = time.perf_counter()
        outcome = await install(*args, **kwargs)
        if outcome == "installed":
            seconds.append(time.perf_counter() - started)
        return outcome

    manager.install = timed  # type: ignore[method-assign]


def _first_score(scores: list[FrameScore], site_id: str, version: str, after: datetime) -> datetime:
    return min(
        s.created_at
        for s in scores
        if s.site_id == site_id and s.model.version == version and s.created_at >= after
    )


def _round_times(
    started: datetime, version: str, scores: list[FrameScore], releases: list[ModelRelease]
) -> dict[str, float]:
    """One release's times in seconds: canary switch, soak, fleet switch."""
    canary = _first_score(scores, "east", version, started)
    fleet_sent = min(
        r.created_at
        for r in releases
        if r.site_id == "west" and r.version == version and r.created_at >= started
    )
    fleet = _first_score(scores, "west", version, started)
    return {
        "release → canary switch": (canary - started).total_seconds(),
        "canary soak (switch → fleet release)": (fleet_sent - canary).total_seconds(),
        "release → whole-fleet switch": (fleet - started).total_seconds(),
    }


async def _measure(root: Path) -> tuple[list[dict[str, float]], list[float], list[str]]:
    """Run the rounds; each round's times, the install times and the rollouts' outcomes."""
    issue_credentials(root / "keys", ["east"])
    seed = (root / "keys" / "release.nk").read_text()
    public_key = FleetIdentities.load(root / "keys").release_public_key
    repository = release_repository(root / "repository", seed)
    plan = RolloutPlan(
        canary=["east"],
        fleet=["west"],
        healthy_frames=HEALTHY_FRAMES,
        soak_timeout_s=SOAK_TIMEOUT_S,
    )
    installs: list[float] = []
    starts: list[tuple[datetime, str]] = []
    outcomes: list[str] = []
    with running_hub(root / "hub") as hub:
        async with hub_sourcing(hub, ["east", "west"]) as hub_js:
            rollout = RolloutSettings(watch_frames=WATCH_FRAMES)
            settings = [
                release_site_settings(root, site_id, hub, repository, public_key, rollout)
                for site_id in ("east", "west")
            ]
            async with running_agent(settings[0]) as east, running_agent(settings[1]) as west:
                for agent in (east, west):
                    _timed_installs(agent, installs)
                feeding = asyncio.create_task(keep_fed([east, west], {}))
                try:
                    await wait_until(
                        lambda: min(east.status().frames_scored, west.status().frames_scored) >= 1,
                        timeout_s=START_TIMEOUT_S,
                    )
                    serving = "5"
                    for index in range(ROUNDS):
                        version = "6" if index % 2 == 0 else "5"
                        starts.append((utc_now(), version))
                        result = await roll_out(
                            hub_js, repository, "quality", version, plan, previous=serving
                        )
                        outcomes.append(f"{serving} → {version}: {result.outcome}")
                        if result.outcome != "fleet":
                            raise RuntimeError(f"release {version} stopped: {result.reason}")
                        serving = version
                        await asyncio.sleep(1.0)  # the fleet's first scores with it
                finally:
                    await cancel_and_wait([feeding], timeout_s=10)
            await asyncio.sleep(1.0)  # the last scores reach the hub
            scores = [m for m in await stored_messages(hub_js) if isinstance(m, FrameScore)]
            commands = await stored_messages(hub_js, COMMAND_STREAM)
    releases = [c for c in commands if isinstance(c, ModelRelease)]
    rounds = [_round_times(started, v, scores, releases) for started, v in starts]
    return rounds, installs, outcomes


def _row(name: str, values: list[float]) -> tuple[str, ...]:
    return (
        name,
        f"{statistics.median(values):.2f}",
        f"{min(values):.2f}",
        f"{max(values):.2f}",
        str(len(values)),
    )


def main() -> None:
    console = Console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-release-") as scratch:
        rounds, installs, outcomes = asyncio.run(_measure(Path(scratch)))
    table = Table(
        title=f"Release to fleet switch: 2 sites, canary healthy after {HEALTHY_FRAMES} frames, "
        f"{len(rounds)} releases"
    )
    for column in ("seconds", "median", "min", "max", "n"):
        table.add_column(column, justify="left" if column == "seconds" else "right")
    for name in rounds[0]:
        table.add_row(*_row(name, [r[name] for r in rounds]))
    table.add_row(*_row("install at a site (fetch+sha256+signature+load)", installs))
    console.print(table)
    console.print("rollouts: " + "; ".join(outcomes), highlight=False)
    console.print(f"[dim]measured in {time.perf_counter() - started:.0f} s[/]")

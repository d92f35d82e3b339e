"""Fault scenarios with real processes, counted: what a camera wrote against what reached the
coordinator's store, what was stored twice, and how long the fleet took to deliver everything
after the fault ended, with nobody touching it.

Each scenario runs a fleet wired as documented (docs/operations.md): a hub nats-server in the
`hub` domain, `skyfleet coordinator run` (its defaults, `SKYFLEET_COORDINATOR_SITES` naming the
site) on SQLite, `skyfleet site run` with its own leaf nats-server, and a camera renaming a
256² frame into the site's folder every `CADENCE_S`. The fault strikes after a few frames, lasts
`FAULT_S` (or is one kill), and the camera goes on throughout.

- lost: frames written but neither scored nor rejected in the coordinator's store;
- stored twice: frame scores the hub's `FLEET` stream holds more than once (the store keeps one
  row per message id whatever the bus does, so this is the bus's own duplicate count);
- recovery: from the end of the fault until the store holds every frame written by then.

`python -m bench faults` (about 5 minutes on 2 cores; needs root for the disk-full scenario's
tmpfs). Knob: `SKYFLEET_BENCH_FAULTS` (comma-separated scenario names).
"""

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats
from protos import FrameScore, QualityLabel
from site_agent.settings import SiteAgentSettings
from tests.disks import fill_disk, small_disk
from tests.site_agents import simulated_frames, site_settings, start_agent_process
from tests.site_topology import (
    running_hub,
    scored_files_in_store,
    start_coordinator_process,
    stored_messages,
)

CADENCE_S = 0.5
"""A frame every half second: faster than any survey camera, so a fault meets a queue."""
FRAMES = 40
"""Frames a scenario writes (20 s of camera)."""
FAULT_AFTER = 8
"""The fault strikes once this many frames are written."""
FAULT_S = 8.0
"""How long an outage lasts (the hub down, the disk full)."""
DELIVERY_TIMEOUT_S = 120.0
"""A scenario gives up waiting for the store after this long (and counts the rest as lost)."""
SITE_ID = "bench"


@dataclass
class Fleet:
    """The running pieces of one scenario."""

    root: Path
    hub: EmbeddedNats
    settings: SiteAgentSettings
    database: Path
    agent: subprocess.Popen[bytes]
    coordinator: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Outcome:
    scenario: str
    written: int
    arrived: int
    stored_twice: int
    recovery_s: float | None


Fault = Callable[[Fleet, "Camera"], Awaitable[None]]


class Camera:
    """Renames pre-written frames into the site's folder, one every `CADENCE_S`."""

    def __init__(self, frames: list[Path], folder: Path) -> None:
        self.frames = frames
        self.folder = folder
        self.written: list[str] = []

    async def run(self) -> None:
        for path in self.frames:
            path.rename(self.folder / path.name)
            self.written.append(path.name)
            await asyncio.sleep(CADENCE_S)

    async def until_written(self, count: int) -> None:
        while len(self.written) < count:
            await asyncio.sleep(0.05)


def _arrived(database: Path) -> set[str]:
    return set(scored_files_in_store(database))


async def _stored_twice(hub: EmbeddedNats) -> int:
    nc = await connect(hub.url, name="bench-faults")
    try:
        messages = await stored_messages(nc.jetstream())
    finally:
        await nc.close()
    ids = Counter(m.message_id for m in messages if isinstance(m, FrameScore))
    return sum(count - 1 for count in ids.values())


def _pid_of_site_server(settings: SiteAgentSettings) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"{settings.nats_store_dir}/nats-server.conf"],
        capture_output=True,
        text=True,
    )
    return int(found.stdout.split()[0])


async def hub_down(fleet: Fleet, camera: Camera) -> None:
    await asyncio.to_thread(fleet.hub.stop)
    await asyncio.sleep(FAULT_S)
    await asyncio.to_thread(fleet.hub.start)


async def hub_killed(fleet: Fleet, camera: Camera) -> None:
    assert fleet.hub.pid is not None
    os.kill(fleet.hub.pid, signal.SIGKILL)
    await asyncio.sleep(FAULT_S)
    await asyncio.to_thread(fleet.hub.restart)


async def coordinator_killed(fleet: Fleet, camera: Camera) -> None:
    fleet.coordinator.kill()
    fleet.coordinator.wait()
    await asyncio.sleep(FAULT_S)
    fleet.coordinator = _start_coordinator(fleet.root, fleet.hub, fleet.database)


async def site_server_killed(fleet: Fleet, camera: Camera) -> None:
    os.kill(_pid_of_site_server(fleet.settings), signal.SIGKILL)


async def agent_killed(fleet: Fleet, camera: Camera) -> None:
    fleet.agent.kill()
    fleet.agent.wait()
    fleet.agent = start_agent_process(fleet.settings, fleet.root / "agent.log")


async def site_disk_full(fleet: Fleet, camera: Camera) -> None:
    filler = fill_disk(fleet.settings.work_dir)
    await asyncio.sleep(FAULT_S)
    filler.unlink()


SCENARIOS: dict[str, Fault] = {
    "hub down 8 s": hub_down,
    "hub kill -9": hub_killed,
    "coordinator kill -9": coordinator_killed,
    "site nats-server kill -9": site_server_killed,
    "site agent kill -9": agent_killed,
    "site disk full 8 s": site_disk_full,
}


def _start_coordinator(root: Path, hub: EmbeddedNats, database: Path) -> subprocess.Popen[bytes]:
    log = root / "coordinator.log"
    return start_coordinator_process(hub.url, database, log, sites=[SITE_ID])


async def run_scenario(name: str, fault: Fault, root: Path) -> Outcome:
    """One fleet, one fault, counted."""
    staged = simulated_frames(root / "staged", [QualityLabel.GOOD] * FRAMES, seed=len(name))
    async with AsyncExitStack() as stack:
        hub = stack.enter_context(running_hub(root / "hub"))
        work_dir = root / "work"
        if fault is site_disk_full:
            work_dir = stack.enter_context(small_disk(work_dir, 160))
        settings = site_settings(root, SITE_ID, hub, work_dir=work_dir, min_free_disk_mb=10)
        settings.watch_dir.mkdir(parents=True, exist_ok=True)
        database = root / "coordinator.sqlite3"
        coordinator = _start_coordinator(root, hub, database)
        agent = start_agent_process(settings, root / "agent.log")
        fleet = Fleet(root, hub, settings, database, agent, coordinator)
        try:
            await _logged(root / "coordinator.log", "coordinator started")
            await _logged(root / "agent.log", "site agent running")
            camera = Camera([path for path, _ in staged], settings.watch_dir)
            shooting = asyncio.create_task(camera.run())
            await camera.until_written(FAULT_AFTER)
            await fault(fleet, camera)
            fault_ended = time.monotonic()
            due = set(camera.written)
            recovery_s = await _until_arrived(database, due, fault_ended)
            await shooting
            await _until_arrived(database, set(camera.written), time.monotonic())
            await asyncio.sleep(2.0)  # anything stored twice arrives by now
            arrived = _arrived(database) & set(camera.written)
            stored_twice = await _stored_twice(hub)
        finally:
            for process in (fleet.agent, fleet.coordinator):
                process.send_signal(signal.SIGTERM)
            for process in (fleet.agent, fleet.coordinator):
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    return Outcome(name, len(camera.written), len(arrived), stored_twice, recovery_s)


async def _logged(log_path: Path, event: str, timeout_s: float = 120.0) -> None:
    """Wait until a process's log says `event` (it is up)."""
    deadline = time.monotonic() + timeout_s
    while not (log_path.exists() and event in log_path.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log_path.name} never said {event!r}")
        await asyncio.sleep(0.2)


async def _until_arrived(database: Path, due: set[str], since: float) -> float | None:
    """Seconds from `since` until the store holds every frame in `due` (None: never)."""
    deadline = since + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if due <= _arrived(database):
            return time.monotonic() - since
        await asyncio.sleep(0.1)
    return None


def _selected() -> dict[str, Fault]:
    wanted = os.environ.get("SKYFLEET_BENCH_FAULTS")
    if not wanted:
        return SCENARIOS
    names = [n.strip() for n in wanted.split(",")]
    return {name: SCENARIOS[name] for name in names}


def main() -> None:
    console = Console()
    outcomes = []
    for name, fault in _selected().items():
        with (
            console.status(f"scenario: {name}"),
            tempfile.TemporaryDirectory(prefix="skyfleet-faults-") as root,
        ):
            outcomes.append(asyncio.run(run_scenario(name, fault, Path(root))))
        console.print(f"done: {name}")
    table = Table(title=f"Faults with real processes ({FRAMES} frames, one every {CADENCE_S} s)")
    for column in ("scenario", "written", "in store", "lost", "stored twice", "recovery s"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for o in outcomes:
        recovery = f"{o.recovery_s:.1f}" if o.recovery_s is not None else "never"
        lost = o.written - o.arrived
        table.add_row(
            o.scenario, str(o.written), str(o.arrived), str(lost), str(o.stored_twice), recovery
        )
    console.print(table)
    worst = max((o.recovery_s or float("inf") for o in outcomes), default=0.0)
    lost = sum(o.written - o.arrived for o in outcomes)
    console.print(
        f"lost {lost} frames in all; slowest recovery {worst:.1f} s (goal: 0 and <= 10 s)"
    )

"""What a fault is handed (`Strike`): the running fleet, the camera, the timings, and where it
says what it did (notes for the report, copies it put on the bus on purpose); and the waits
faults share: a burst caught in flight at the centre or at the site."""

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.camera import Camera
from bench.chaos.counter import stored_file_names
from bench.chaos.fleet import ChaosFleet, FleetSpec
from bench.chaos.knobs import ChaosKnobs

IN_FLIGHT_TIMEOUT_S = 30.0


@dataclass
class Strike:
    """One fault's view of its scenario."""

    fleet: ChaosFleet
    camera: Camera
    knobs: ChaosKnobs
    notes: list[str] = field(default_factory=list)
    resent: int = 0
    """Copies of messages the fault itself published without a message id."""

    restarts: list[tuple[str, "asyncio.Task[float]"]] = field(default_factory=list)
    """Processes started again by the fault, and when each was up (`note_start_ups`)."""

    def note(self, text: str) -> None:
        self.notes.append(text)

    def restarted(self, what: str, up: "asyncio.Task[float]") -> None:
        self.restarts.append((what, up))

    async def note_start_ups(self) -> None:
        """Note how long each restarted process took to come up (part of the recovery)."""
        for what, up in self.restarts:
            try:
                self.note(f"the restarted {what} was up {await up:.1f} s after its start")
            except RuntimeError as exc:
                self.note(f"the restarted {what} did not come up: {exc}")


Fault = Callable[[Strike], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A named fault on a fleet of a given kind."""

    key: str
    name: str
    fault: Fault
    spec: FleetSpec = field(default_factory=FleetSpec)


async def _until_some(count: Callable[[], int]) -> int:
    """Poll `count()` until it is above 0 (or the time is up); returns the last count."""
    deadline = time.monotonic() + IN_FLIGHT_TIMEOUT_S
    held = 0
    while time.monotonic() < deadline:
        held = await asyncio.to_thread(count)
        if held > 0:
            return held
        await asyncio.sleep(0.02)
    return held


async def burst_reaching_store(strike: Strike, names: list[str]) -> int:
    """Wait until the first frames of a burst are in the store (ingest is under way); returns
    how many of them it holds."""
    wanted = set(names)

    def stored() -> int:
        return len(wanted & set(stored_file_names(strike.fleet.database_url)))

    return await _until_some(stored)


def settled_at_site(state_path: Path, names: list[str]) -> int:
    """How many of `names` the site agent has recorded as done (its state file)."""
    wanted = set(names)
    try:
        with closing(sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT path FROM frames").fetchall()
    except sqlite3.OperationalError:
        return 0
    return sum(Path(row[0]).name in wanted for row in rows)


async def burst_in_hand_at_site(strike: Strike, names: list[str]) -> int:
    """Wait until the site agent has finished the first frames of a burst (it is working
    through it); returns how many."""
    state = strike.fleet.settings.state_path
    return await _until_some(lambda: settled_at_site(state, names))

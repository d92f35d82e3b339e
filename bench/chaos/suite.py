"""Running the chaos scenarios and reporting them: each scenario from a clean state (its own
folder, credentials, hub, proxy, database, site and coordinator processes), its phases timed,
and the table of the count (`run_suite`, `report`).

A scenario: the camera writes `fault_after` frames and the store must hold them (the fleet
works); the fault strikes while the camera goes on; recovery is the time from the fault's end
until the store holds every frame written by then; the camera writes `tail_frames` more and
stops; once the store holds every frame and the coordinator's consumers have nothing pending,
the independent counter counts.
"""

import asyncio
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.chaos.camera import Camera, frame_pool
from bench.chaos.counter import Tally, count, delivery, until_stored
from bench.chaos.fleet import chaos_fleet
from bench.chaos.knobs import ChaosKnobs
from bench.chaos.scenarios import selected
from bench.chaos.strike import Scenario, Strike

IDLE_TIMEOUT_S = 60.0
LATE_COPIES_S = 1.0
"""Waited after the store is complete, so that a copy still on its way is counted."""


@dataclass
class Outcome:
    """What one scenario measured."""

    scenario: Scenario
    tally: Tally | None = None
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None
    resent: int = 0
    """Copies the scenario resent on purpose (duplicate delivery)."""

    @property
    def duplicated(self) -> int | None:
        return None if self.tally is None else self.tally.stream_copies + self.tally.store_copies

    def met(self, knobs: ChaosKnobs) -> bool:
        """0 lost, 0 duplicated, recovered within the goal."""
        return (
            self.error is None
            and self.tally is not None
            and self.tally.lost == 0
            and self.duplicated == 0
            and self.recovery_s is not None
            and self.recovery_s <= knobs.recovery_goal_s
        )


async def _strike(strike: Strike, scenario: Scenario, outcome: Outcome) -> None:
    """The phases of one scenario, on a running fleet with its camera shooting."""
    knobs, camera, url = strike.knobs, strike.camera, strike.fleet.database_url
    await camera.until_written(knobs.fault_after)
    if await until_stored(url, set(camera.written), since=0, timeout_s=60) is None:
        raise RuntimeError("the fleet did not deliver before the fault")
    await scenario.fault(strike)
    ended = time.monotonic()
    due = set(camera.written)
    caught_up = await delivery(url, due, since=ended, timeout_s=knobs.delivery_timeout_s)
    outcome.recovery_s = caught_up.all_s
    if caught_up.missing:
        first = "never" if caught_up.first_s is None else f"{caught_up.first_s:.1f} s"
        strike.note(
            f"at the fault's end {caught_up.missing} frames were not stored yet; the first of "
            f"them was stored after {first}"
        )
    await strike.note_start_ups()
    await camera.until_written(len(due) + knobs.tail_frames)
    camera.stopped.set()
    await until_stored(url, set(camera.written), since=0, timeout_s=knobs.delivery_timeout_s)
    if not await strike.fleet.ingest_idle(IDLE_TIMEOUT_S):
        strike.note(f"the coordinator still had messages pending after {IDLE_TIMEOUT_S:.0f} s")
    await asyncio.sleep(LATE_COPIES_S)
    outcome.tally = await count(
        camera.written,
        url,
        strike.fleet.hub.url,
        strike.fleet.seed("operator"),
    )
    outcome.resent = strike.resent
    if strike.resent:
        strike.note(
            f"FLEET holds {outcome.tally.resent_in_stream} of the {strike.resent} copies resent "
            "without an id; the store kept each frame once"
        )


async def run_scenario(
    scenario: Scenario, root: Path, pool: list[Path], knobs: ChaosKnobs
) -> Outcome:
    """One scenario on a fleet of its own under `root`; a scenario that fails is reported with
    its error, not raised."""
    outcome = Outcome(scenario)
    started = time.monotonic()
    try:
        async with chaos_fleet(root, scenario.spec) as fleet:
            camera = Camera(pool, fleet.settings.watch_dir, root / "staging", knobs.cadence_s)
            strike = Strike(fleet, camera, knobs, notes=outcome.notes)
            shooting = asyncio.create_task(camera.run())
            try:
                await _strike(strike, scenario, outcome)
            finally:
                camera.stopped.set()
                await shooting
    except Exception as exc:  # reported in the table; the suite goes on
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.wall_s = time.monotonic() - started
    return outcome


def run_suite(
    knobs: ChaosKnobs,
    keys: Sequence[str] = (),
    workdir: Path | None = None,
    console: Console | None = None,
) -> list[Outcome]:
    """The scenarios with `keys` (all when none), each from a clean state under `workdir` (a
    temporary folder, removed afterwards, when None)."""
    console = console or Console()
    outcomes = []
    with ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        with console.status("simulating the camera's frames"):
            pool = frame_pool(root / "pool", knobs.pool_size)
        for scenario in selected(knobs, tuple(keys)):
            with console.status(f"scenario: {scenario.name}"):
                outcome = asyncio.run(run_scenario(scenario, root / scenario.key, pool, knobs))
            outcomes.append(outcome)
            verdict = "ok" if outcome.met(knobs) else "NOT MET"
            console.print(f"{verdict}: {scenario.name} ({outcome.wall_s:.0f} s)")
    return outcomes


def _cells(outcome: Outcome) -> list[str]:
    tally = outcome.tally
    if tally is None:
        return ["-"] * 6
    dup = f"{outcome.duplicated}"
    if outcome.duplicated:
        dup += f" (stream {tally.stream_copies}, store {tally.store_copies})"
    recovery = "never" if outcome.recovery_s is None else f"{outcome.recovery_s:.1f}"
    numbers = (tally.written, tally.scored, tally.stored, tally.lost)
    return [*(str(n) for n in numbers), dup, recovery]


def report(outcomes: list[Outcome], knobs: ChaosKnobs, console: Console) -> bool:
    """Print the table and the notes; returns whether every scenario met the goal."""
    table = Table(
        title=f"Chaos: real processes, fleet identities on, faults of {knobs.fault_s:g} s, "
        f"a frame every {knobs.cadence_s:g} s"
    )
    columns = ("scenario", "written", "scored", "stored", "lost", "duplicated", "recovery s")
    for column in columns:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for outcome in outcomes:
        table.add_row(outcome.scenario.name, *_cells(outcome))
    console.print(table)
    for outcome in outcomes:
        for text in [*outcome.notes, *([outcome.error] if outcome.error else [])]:
            console.print(f"- {outcome.scenario.name}: {text}", highlight=False)
    met = all(o.met(knobs) for o in outcomes)
    worst = max((o.recovery_s or float("inf") for o in outcomes), default=0.0)
    console.print(
        f"{'all met' if met else 'NOT MET'}: lost {sum(o.tally.lost for o in outcomes if o.tally)}"
        f", duplicated {sum(o.duplicated or 0 for o in outcomes)}, slowest recovery "
        f"{worst:.1f} s (goal: 0, 0, <= {knobs.recovery_goal_s:g} s)"
    )
    return met

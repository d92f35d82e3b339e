"""Chaos: fault scenarios with real processes and the fleet's identities on, counted by an
independent counter: frames written, scored (in the hub's `FLEET` stream), stored (in the
coordinator's database), lost, duplicated, and the recovery time after each fault ends.

`make chaos` runs this (`python -m bench faults`): fifteen scenarios with 60-s faults (the hub
stopped and killed, a site's leaf server killed, the leaf link cut, the coordinator killed on
SQLite and PostgreSQL, the site agent killed mid-frame, full disks at the site and the centre,
the site's clock 10 min ahead and behind, duplicate and out-of-order delivery), about 20
minutes on 2 cores; root is needed for the small disks (tmpfs), PostgreSQL on 127.0.0.1:5432,
and Debian's `faketime` for the skewed clocks. The scenarios and the counter live in
`bench/chaos/`. Knobs: `SKYFLEET_CHAOS_FAULT_S` (60), `SKYFLEET_CHAOS_CADENCE_S` (0.5),
`SKYFLEET_BENCH_FAULTS` (comma-separated scenario keys; all when unset).
"""

import sys
import time

from rich.console import Console

from bench.chaos.knobs import ChaosKnobs
from bench.chaos.suite import report, run_suite
from bench.settings import BenchSettings


def main() -> None:
    console = Console(width=max(Console().width, 120))
    knobs = ChaosKnobs()
    started = time.monotonic()
    outcomes = run_suite(knobs, BenchSettings().fault_names, knobs.workdir, console)
    met = report(outcomes, knobs, console)
    console.print(f"chaos suite took {time.monotonic() - started:.0f} s")
    if not met:
        sys.exit(1)

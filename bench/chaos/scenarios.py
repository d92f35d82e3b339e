"""The chaos scenarios, each a fault on a fleet of its kind (`scenarios`), and the few the short
form in `make test` runs (`SHORT_KEYS`)."""

from bench.chaos.faults_bus import (
    duplicates_and_out_of_order,
    hub_killed,
    hub_stopped,
    link_cut,
    site_server_killed,
)
from bench.chaos.faults_sites import (
    agent_killed,
    centre_disk_full,
    clock_skewed,
    coordinator_killed,
    site_disk_full,
)
from bench.chaos.fleet import FleetSpec
from bench.chaos.knobs import ChaosKnobs
from bench.chaos.strike import Scenario

CLOCK_SKEW_S = 600
SHORT_KEYS = ("link-cut", "duplicates")
"""The short form (about a minute on 2 quiet cores): the leaf link cut (store and forward
through the proxy), and duplicate and out-of-order delivery (every frame message handed to the
coordinator again, after a restart)."""


def scenarios(knobs: ChaosKnobs) -> list[Scenario]:
    """Every scenario, named with the suite's fault length."""
    f = f"{knobs.fault_s:g} s"
    all_on_one = FleetSpec(site_disks=("work",))
    each_its_own = FleetSpec(site_disks=("work", "quarantine", "nats"))
    return [
        Scenario("hub-stop", f"hub nats-server stopped {f}", hub_stopped),
        Scenario("hub-kill", f"hub nats-server kill -9 under load, down {f}", hub_killed),
        Scenario("leaf-kill", "site leaf server kill -9", site_server_killed),
        Scenario("link-cut", f"leaf link cut {f}", link_cut),
        Scenario(
            "coordinator-kill-sqlite", "coordinator kill -9 mid-ingest (SQLite)", coordinator_killed
        ),
        Scenario(
            "coordinator-kill-postgresql",
            "coordinator kill -9 mid-ingest (PostgreSQL)",
            coordinator_killed,
            FleetSpec(database="postgresql"),
        ),
        Scenario("agent-kill", "site agent kill -9 mid-frame, restarted", agent_killed),
        Scenario(
            "site-disk-full",
            f"site disk full {f} (state, quarantine, outbox on it)",
            site_disk_full("work"),
            all_on_one,
        ),
        Scenario(
            "site-disk-full-state",
            f"site state disk full {f}",
            site_disk_full("work"),
            each_its_own,
        ),
        Scenario(
            "site-disk-full-quarantine",
            f"site quarantine disk full {f}",
            site_disk_full("quarantine"),
            each_its_own,
        ),
        Scenario(
            "site-disk-full-outbox",
            f"site outbox (JetStream) disk full {f}",
            site_disk_full("nats"),
            each_its_own,
        ),
        Scenario(
            "centre-disk-full",
            f"centre disk full {f} (coordinator's SQLite)",
            centre_disk_full,
            FleetSpec(centre_disk=True),
        ),
        Scenario(
            "clock-ahead",
            f"site clock +{CLOCK_SKEW_S // 60} min",
            clock_skewed,
            FleetSpec(clock_skew_s=CLOCK_SKEW_S),
        ),
        Scenario(
            "clock-behind",
            f"site clock -{CLOCK_SKEW_S // 60} min",
            clock_skewed,
            FleetSpec(clock_skew_s=-CLOCK_SKEW_S),
        ),
        Scenario("duplicates", "duplicate and out-of-order delivery", duplicates_and_out_of_order),
    ]


def selected(knobs: ChaosKnobs, keys: list[str] | tuple[str, ...]) -> list[Scenario]:
    """The scenarios with these keys, in the suite's order (all of them when none is given)."""
    every = scenarios(knobs)
    unknown = set(keys) - {s.key for s in every}
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; have {[s.key for s in every]}")
    return [s for s in every if not keys or s.key in keys]

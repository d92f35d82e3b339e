"""Faults of the processes, the disks and the clocks: the coordinator killed -9 mid-ingest, the
site agent killed -9 mid-frame and started again on the same folder, a full disk at the site
(its state, its quarantine, its outbox: the site's JetStream store) and at the centre (the
coordinator's database), and a site whose clock is off by minutes.

A killed process is started again at once, as systemd or Kubernetes would: the fault ends
when its replacement is started, so recovery includes its start-up.
"""

import asyncio
from pathlib import Path

from bench.chaos.counter import site_clock_offset_s, site_heartbeat_age_s
from bench.chaos.strike import (
    Fault,
    Strike,
    burst_in_hand_at_site,
    burst_reaching_store,
    settled_at_site,
)
from tests.disks import fill_disk


async def coordinator_killed(strike: Strike) -> None:
    """The coordinator killed -9 while it stores a burst of frames, then started again."""
    burst = strike.camera.write(strike.knobs.burst)
    stored = await burst_reaching_store(strike, burst)
    strike.fleet.kill_coordinator()
    strike.note(f"killed with {stored} of a {len(burst)}-frame burst stored")
    strike.restarted("coordinator", await strike.fleet.start_coordinator(wait=False))


async def agent_killed(strike: Strike) -> None:
    """The site agent killed -9 while it works through a burst (a frame in hand), then started
    again on the same folders."""
    burst = strike.camera.write(strike.knobs.burst)
    await burst_in_hand_at_site(strike, burst)
    strike.fleet.kill_agent()
    done = settled_at_site(strike.fleet.settings.state_path, burst)
    strike.note(
        f"killed with {done} of a {len(burst)}-frame burst done at the site"
        + (", the next one in hand" if 0 < done < len(burst) else "")
    )
    strike.restarted("site agent", await strike.fleet.start_agent(wait=False))


def _site_part(strike: Strike, part: str) -> Path:
    work_dir = strike.fleet.settings.work_dir
    return work_dir if part == "work" else work_dir / part


async def _disk_full(strike: Strike, folder: Path, *, unreadable: int) -> None:
    """Fill the disk of `folder` for `fault_s`, writing `unreadable` files meanwhile (their
    rejections need the quarantine)."""
    folder.mkdir(parents=True, exist_ok=True)
    filler = await asyncio.to_thread(fill_disk, folder)
    strike.camera.write_unreadable(unreadable)
    await asyncio.sleep(strike.knobs.fault_s / 2)
    strike.camera.write_unreadable(unreadable)
    await asyncio.sleep(strike.knobs.fault_s / 2)
    filler.unlink()


def site_disk_full(part: str) -> Fault:
    """The site's disk holding `part` of its work folder ("work": the state and anything not
    on a disk of its own; "quarantine"; "nats": the outbox) full for `fault_s`."""

    async def fault(strike: Strike) -> None:
        await _disk_full(strike, _site_part(strike, part), unreadable=2)

    fault.__doc__ = site_disk_full.__doc__
    return fault


async def centre_disk_full(strike: Strike) -> None:
    """The disk of the coordinator's SQLite database full for `fault_s`."""
    database = Path(strike.fleet.database_url.removeprefix("sqlite:///"))
    await _disk_full(strike, database.parent, unreadable=0)


async def clock_skewed(strike: Strike) -> None:
    """The site agent runs with its clock off (the scenario's fleet starts it so); `fault_s` of
    frames are written and what the centre measured of the site's clock is noted."""
    await asyncio.sleep(strike.knobs.fault_s)
    offset = site_clock_offset_s(strike.fleet.database_url)
    skew = strike.fleet.spec.clock_skew_s
    measured = "nothing stored" if offset is None else f"{offset:+.0f} s"
    age = site_heartbeat_age_s(strike.fleet.database_url)
    heartbeat = "none stored" if age is None else f"{age:+.0f} s old"
    strike.note(
        f"site clock set {skew:+d} s; scored_at - ingested_at in the store: {measured}; the "
        f"site's latest heartbeat seen from the centre: {heartbeat}"
    )

"""A fleet set up the way the README and the command line say (a hub in the `hub` domain, sites
joined with `skyfleet site join`, `skyfleet coordinator run` with its defaults) keeps store and
forward, and heals without an operator: frames scored while the hub is down reach the
coordinator's store once each, and ingest resumes within seconds of the hub's return."""

import asyncio
import subprocess
import time
from pathlib import Path

from protos import QualityLabel
from tests.conftest import SKYFLEET
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import (
    RECOVERY_S,
    coordinator_process,
    running_hub,
    scored_files_in_store,
)


def _site_join(hub_url: str, site_id: str) -> None:
    joined = subprocess.run(
        [str(SKYFLEET), "site", "join", site_id, "--nats", hub_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert joined.returncode == 0, joined.stderr


def _deliver(frames: list[tuple[Path, QualityLabel]], folder: Path) -> list[str]:
    """Put frames into the watched folder as a camera would (renamed into place)."""
    for path, _ in frames:
        path.rename(folder / path.name)
    return [path.name for path, _ in frames]


async def _coordinator_started(log_path: Path) -> None:
    started = await wait_until(
        lambda: log_path.exists() and "coordinator started" in log_path.read_text(),
        timeout_s=60,
    )
    assert started, log_path.read_text() if log_path.exists() else "no coordinator log"


async def _seconds_until_stored(database: Path, count: int, *, timeout_s: float) -> float:
    began = time.monotonic()
    await wait_until(lambda: len(scored_files_in_store(database)) >= count, timeout_s=timeout_s)
    return time.monotonic() - began


async def test_frames_scored_while_the_hub_is_down_all_reach_the_store_once(tmp_path):
    staged = simulated_frames(tmp_path / "staged", [QualityLabel.GOOD] * 8, seed=3)
    database = tmp_path / "coordinator.sqlite3"
    with running_hub(tmp_path / "hub") as hub:
        _site_join(hub.url, "a")
        settings = site_settings(tmp_path, "a", hub)
        async with running_agent(settings) as agent:
            log = tmp_path / "coordinator.log"
            with coordinator_process(hub.url, database, log):
                await _coordinator_started(log)
                delivered = _deliver(staged[:3], settings.watch_dir)
                await _seconds_until_stored(database, 3, timeout_s=60)
                hub.stop()
                delivered += _deliver(staged[3:], settings.watch_dir)
                assert await wait_until(lambda: agent.status().frames_scored == 8, timeout_s=60)
                await asyncio.sleep(5)  # the outage goes on after the last frame is scored
                hub.start()
                await _seconds_until_stored(database, 8, timeout_s=60)
                await asyncio.sleep(2)  # and nothing more arrives later
                stored = scored_files_in_store(database)
    assert sorted(stored) == sorted(delivered)


async def test_a_new_fleet_and_a_restarted_hub_deliver_within_seconds_without_an_operator(
    tmp_path,
):
    staged = simulated_frames(tmp_path / "staged", [QualityLabel.GOOD] * 2, seed=4)
    database = tmp_path / "coordinator.sqlite3"
    with running_hub(tmp_path / "hub") as hub:
        _site_join(hub.url, "b")  # before the site's stream exists, as in a new fleet
        settings = site_settings(tmp_path, "b", hub)
        async with running_agent(settings):
            log = tmp_path / "coordinator.log"
            with coordinator_process(hub.url, database, log):
                await _coordinator_started(log)
                _deliver(staged[:1], settings.watch_dir)
                first_s = await _seconds_until_stored(database, 1, timeout_s=60)
                hub.stop()
                hub.start()
                _deliver(staged[1:], settings.watch_dir)
                after_restart_s = await _seconds_until_stored(database, 2, timeout_s=60)
    assert first_s <= RECOVERY_S
    assert after_restart_s <= RECOVERY_S

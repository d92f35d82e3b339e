"""A site heals by itself: its nats-server killed, its disk filled and freed, a small disk — the
agent goes on, delivers every frame to the centre once, and says what happened."""

import asyncio
import os
import shutil
import signal
import time

import pytest
from nats.errors import Error as NatsError

from fleetbus.client import connect
from fleetbus.process_supervisor import ProcessSupervisor
from fleetbus.server import EmbeddedNats
from fleetbus.streams import ensure_streams
from fleetbus.tasks import cancel_and_wait
from protos import QualityLabel, SiteHeartbeat
from protos.streams import site_stream
from protos.subjects import subject_for_kind
from site_agent.site_nats import StoreFaultCheck, site_server_config
from tests.disks import fill_disk, small_disk
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import (
    RECOVERY_S,
    frame_messages_at_hub,
    hub_sourcing,
    running_hub,
    stored_messages,
)

GOOD = QualityLabel.GOOD


async def test_a_killed_site_server_is_restarted_and_reported_and_frames_flow_again(tmp_path):
    staged = simulated_frames(tmp_path / "staged", [GOOD] * 4, seed=11)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "heal", hub)
        async with hub_sourcing(hub, ["heal"]) as hub_js, running_agent(settings) as agent:
            for path, _ in staged[:2]:
                path.rename(settings.watch_dir / path.name)
            await frame_messages_at_hub(hub_js, 2, timeout_s=60)
            server = agent.nats_server
            assert server is not None and server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            for path, _ in staged[2:]:
                path.rename(settings.watch_dir / path.name)
            scores, _ = await frame_messages_at_hub(hub_js, 4, timeout_s=60)
            recovered_s = time.monotonic() - killed_at
            beats = [m for m in await stored_messages(hub_js) if isinstance(m, SiteHeartbeat)]
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)
    assert recovered_s <= RECOVERY_S
    assert agent.restarts["nats-server"] == 1
    assert any(beat.restarts.get("nats-server") == 1 for beat in beats)


async def test_a_full_disk_holds_frames_back_and_they_all_flow_once_it_is_freed(tmp_path):
    staged = simulated_frames(tmp_path / "staged", [GOOD] * 5, seed=12)
    with running_hub(tmp_path / "hub") as hub, small_disk(tmp_path / "disk", 128) as disk:
        settings = site_settings(tmp_path, "full", hub, work_dir=disk, min_free_disk_mb=10)
        async with hub_sourcing(hub, ["full"]) as hub_js, running_agent(settings) as agent:
            for path, _ in staged[:2]:
                path.rename(settings.watch_dir / path.name)
            await frame_messages_at_hub(hub_js, 2, timeout_s=60)
            filler = fill_disk(disk)
            for path, _ in staged[2:]:
                path.rename(settings.watch_dir / path.name)
            held_back = not await wait_until(lambda: agent.status().frames_scored > 2, timeout_s=8)
            filler.unlink()
            freed_at = time.monotonic()
            scores, _ = await frame_messages_at_hub(hub_js, 5, timeout_s=60)
            assert await wait_until(lambda: agent.status().frames_scored == 5, timeout_s=60)
            recovered_s = time.monotonic() - freed_at
    assert held_back, "a frame was recorded as done while the site could not keep its state"
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)
    assert recovered_s <= RECOVERY_S


async def _published_when_acknowledged(js, subject: str) -> float:
    """Publish until the server acknowledges; returns the seconds it took."""
    began = time.monotonic()
    while True:
        try:
            await js.publish(subject, b"{}", timeout=1.0)
            return time.monotonic() - began
        except (TimeoutError, NatsError):
            await asyncio.sleep(0.2)


async def test_a_site_server_whose_store_failed_is_restarted_once_its_disk_has_room(tmp_path):
    subject = subject_for_kind("frame-score", "x")
    with small_disk(tmp_path / "disk", 64) as disk:
        server = EmbeddedNats(site_server_config("x", disk / "nats", hub_leaf_url=None)).start()
        check = StoreFaultCheck(server, min_free_bytes=10_000_000)
        supervisor = ProcessSupervisor(server, name="nats-server", fault=check)
        watching = asyncio.create_task(supervisor.run())
        nc = await connect(server.url, name="test")
        try:
            js = nc.jetstream()
            await ensure_streams(js, [site_stream("x")])
            filler = fill_disk(disk)
            with pytest.raises(TimeoutError):  # not acknowledged: it could not be kept
                await js.publish(subject, b"{}", timeout=1.0)
            await asyncio.sleep(2.0)
            restarts_while_full, degraded = supervisor.restarts, check.disk_full
            filler.unlink()
            recovered_s = await _published_when_acknowledged(js, subject)
        finally:
            await cancel_and_wait([watching], timeout_s=10)
            await nc.close()
            server.stop()
    assert restarts_while_full == 0 and degraded  # a restart cannot help while the disk is full
    assert supervisor.restarts == 1
    assert "JetStream store failed" in (supervisor.last_fault or "")
    assert recovered_s <= RECOVERY_S


async def test_a_site_with_a_small_disk_starts_and_delivers(tmp_path):
    staged = simulated_frames(tmp_path / "staged", [GOOD] * 2, seed=13)
    with running_hub(tmp_path / "hub") as hub, small_disk(tmp_path / "disk", 200) as disk:
        settings = site_settings(tmp_path, "small", hub, work_dir=disk)
        async with hub_sourcing(hub, ["small"]) as hub_js, running_agent(settings):
            for path, _ in staged:
                path.rename(settings.watch_dir / path.name)
            scores, _ = await frame_messages_at_hub(hub_js, 2, timeout_s=60)
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)


async def test_a_site_whose_store_was_wiped_delivers_again(tmp_path):
    # a replaced disk or edge computer: the site starts again with an empty work folder
    staged = simulated_frames(tmp_path / "staged", [GOOD] * 6, seed=14)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "fresh", hub)
        async with hub_sourcing(hub, ["fresh"]) as hub_js:
            async with running_agent(settings):
                for path, _ in staged[:3]:
                    path.rename(settings.watch_dir / path.name)
                await frame_messages_at_hub(hub_js, 3, timeout_s=60)
            shutil.rmtree(settings.work_dir)
            async with running_agent(settings):
                started = time.monotonic()
                for path, _ in staged[3:]:
                    path.rename(settings.watch_dir / path.name)
                scores, _ = await frame_messages_at_hub(hub_js, 6, timeout_s=60)
                delivered_s = time.monotonic() - started
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)
    assert delivered_s <= RECOVERY_S

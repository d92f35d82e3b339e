"""The site agent end to end with real nats-server processes: frames dropped into the folder
arrive at the hub's FLEET stream as scores, once each, through outages and crashes."""

import asyncio
import os
import signal
import time
import urllib.request
from collections import Counter
from datetime import timedelta

import pytest

from fleetbus.client import connect
from fleetbus.server import free_port
from protos import FrameScore, LinkState, QualityLabel, SiteHeartbeat
from protos.streams import site_stream_name
from site_agent.state import ProcessedFrames
from tests.site_agents import (
    NIGHT,
    running_agent,
    simulated_frames,
    site_settings,
    start_agent_process,
    wait_until,
)
from tests.site_topology import (
    frame_messages_at_hub,
    hub_sourcing,
    running_hub,
    running_site_server,
    stored_messages,
)
from training.simulator import SimCamera
from training.simulator.dataset import simulate_labelled_frame
from training.simulator.fitsio import write_frame
from training.simulator.truth import FrameTruth


def _cycle(count: int) -> list[QualityLabel]:
    labels = list(QualityLabel)
    return [labels[index % 3] for index in range(count)]


VISIBLE_FAULTS = ("seeing", "trailing", "focus", "satellite_trails")
"""Faults one frame shows; transparency and sky brightness alone need a zero point
(docs/quality-model.md)."""


def _unambiguous(truth: FrameTruth) -> bool:
    """Good in every respect, or bad by a fault the frame itself shows."""
    if truth.label is QualityLabel.GOOD:
        return True
    return truth.label is QualityLabel.BAD and any(
        truth.grades[fault] is QualityLabel.BAD for fault in VISIBLE_FAULTS
    )


@pytest.mark.slow
async def test_two_hundred_frames_arrive_at_the_hub_as_two_hundred_scores(tmp_path):
    camera = SimCamera(width_px=1024, height_px=1024)
    staged = {}
    for index in range(200):
        frame = simulate_labelled_frame(
            list(QualityLabel)[index % 3],
            camera,
            seed=7,
            index=index,
            date_obs=NIGHT + timedelta(minutes=2 * index),
        )
        path = write_frame(frame, tmp_path / "staged" / f"sim-{index:04d}.fits")
        staged[path.name] = (path, frame.truth)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "north", hub, search_transients=False)
        async with hub_sourcing(hub, ["north"]) as hub_js, running_agent(settings) as agent:
            for path, _ in staged.values():
                path.rename(settings.watch_dir / path.name)
            scores, rejections = await frame_messages_at_hub(hub_js, 200, timeout_s=240)
            assert agent.status().frames_scored == 200
    assert rejections == []
    assert len(scores) == 200
    assert len({s.message_id for s in scores}) == 200
    assert all(s.thumbnail_png_b64 for s in scores)  # the console's frame browser shows them
    truths = {name: truth for name, (_, truth) in staged.items()}
    clear = [s for s in scores if _unambiguous(truths[s.frame.file_name])]
    agree = sum(s.label is truths[s.frame.file_name].label for s in clear)
    assert len(clear) >= 100
    assert agree >= 0.9 * len(clear), Counter(
        (truths[s.frame.file_name].label, s.label) for s in clear
    )


async def test_heartbeats_and_metrics_report_what_the_agent_did(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "west", hub, metrics_port=free_port())
        async with hub_sourcing(hub, ["west"]) as hub_js, running_agent(settings) as agent:
            simulated_frames(settings.watch_dir, [QualityLabel.GOOD, QualityLabel.BAD])
            assert await wait_until(lambda: agent.status().frames_scored == 2, timeout_s=60)
            await asyncio.sleep(3 * settings.heartbeat_interval_s)
            url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
            metrics = urllib.request.urlopen(url).read().decode()
            beats = [m for m in await stored_messages(hub_js) if isinstance(m, SiteHeartbeat)]
    latest = max(beats, key=lambda b: b.created_at)
    assert latest.frames_scored == 2
    assert latest.link_state is LinkState.UP
    assert latest.model_version
    assert latest.disk_free_bytes > 0
    assert latest.last_frame_at is not None
    scored = [line for line in metrics.splitlines() if line.startswith("skyfleet_site_frames_")]
    assert sum(float(line.split()[-1]) for line in scored if "scored_total" in line) == 2
    assert 'skyfleet_site_frame_latency_seconds_count{site="west"} 2.0' in metrics
    assert 'skyfleet_site_link_up{site="west"} 1.0' in metrics


async def test_an_agent_on_a_single_central_server_publishes_into_fleet(
    tmp_path, nats_server, fleet_bus
):
    _, js = fleet_bus
    settings = site_settings(tmp_path, "solo", None, nats_url=nats_server.url, hub_js_domain=None)
    async with running_agent(settings) as agent:
        staged = simulated_frames(settings.watch_dir, [QualityLabel.GOOD, QualityLabel.MEDIUM])
        scores, _ = await frame_messages_at_hub(js, 2, timeout_s=60)
        assert agent.status().link_state is LinkState.UP
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)


async def test_with_triton_unreachable_frames_are_scored_in_process(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        dead_triton = f"127.0.0.1:{free_port()}"
        settings = site_settings(tmp_path, "tri", hub, triton_url=dead_triton)
        async with hub_sourcing(hub, ["tri"]) as hub_js, running_agent(settings):
            staged = simulated_frames(settings.watch_dir, [QualityLabel.BAD])
            scores, rejections = await frame_messages_at_hub(hub_js, 1, timeout_s=60)
    assert rejections == []
    assert [s.frame.file_name for s in scores] == [staged[0][0].name]


@pytest.mark.slow
async def test_frames_scored_during_a_30_s_hub_outage_arrive_once_when_it_returns(tmp_path):
    staged = simulated_frames(tmp_path / "staged", _cycle(30), seed=3)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "east", hub)
        async with hub_sourcing(hub, ["east"]) as hub_js, running_agent(settings) as agent:
            for path, _ in staged[:10]:
                path.rename(settings.watch_dir / path.name)
            assert await wait_until(lambda: agent.status().frames_scored == 10, timeout_s=60)
            hub.stop()
            outage_ends = time.monotonic() + 30
            for path, _ in staged[10:]:  # frames keep arriving while the centre is away
                path.rename(settings.watch_dir / path.name)
                await asyncio.sleep(1.0)
            assert await wait_until(lambda: agent.status().frames_scored == 30, timeout_s=60)
            assert agent.status().link_state is LinkState.DOWN
            await asyncio.sleep(max(0.0, outage_ends - time.monotonic()))
            hub.start()
            scores, _ = await frame_messages_at_hub(hub_js, 30, timeout_s=60)
            await asyncio.sleep(3)  # and nothing arrives twice later
            scores, _ = await frame_messages_at_hub(hub_js, 30, timeout_s=0)
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)


def _settled(settings) -> int:
    if not settings.state_path.exists():
        return 0
    with ProcessedFrames(settings.state_path) as state:
        return state.count()


@pytest.mark.slow
async def test_an_agent_killed_mid_batch_loses_nothing_and_publishes_nothing_twice(tmp_path):
    staged = simulated_frames(tmp_path / "staged", _cycle(16), seed=5)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "kill", hub)
        settings.watch_dir.mkdir(parents=True)
        async with hub_sourcing(hub, ["kill"]) as hub_js:
            agent = start_agent_process(settings, tmp_path / "agent.log")
            try:
                for path, _ in staged:
                    path.rename(settings.watch_dir / path.name)
                assert await wait_until(lambda: _settled(settings) >= 4, timeout_s=120)
                os.kill(agent.pid, signal.SIGKILL)  # mid-batch: frames queued and in hand
                agent.wait()
                assert _settled(settings) < 16
                agent = start_agent_process(settings, tmp_path / "agent.log")
                assert await wait_until(lambda: _settled(settings) == 16, timeout_s=120)
                scores, _ = await frame_messages_at_hub(hub_js, 16, timeout_s=30)
                await asyncio.sleep(3)  # and nothing arrives twice later
                scores, _ = await frame_messages_at_hub(hub_js, 16, timeout_s=0)
            finally:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=30)
    assert len(scores) == 16
    assert sorted(s.frame.file_name for s in scores) == sorted(p.name for p, _ in staged)


async def test_sigterm_finishes_the_frame_in_hand_and_exits_cleanly(tmp_path):
    staged = simulated_frames(tmp_path / "staged", _cycle(12), seed=9)
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "term", hub)
        settings.watch_dir.mkdir(parents=True)
        agent = start_agent_process(settings, tmp_path / "agent.log")
        try:
            for path, _ in staged:
                path.rename(settings.watch_dir / path.name)
            assert await wait_until(lambda: _settled(settings) >= 2, timeout_s=120)
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
        settled_at_exit = _settled(settings)
        with running_site_server(settings.nats_store_dir, "term", hub) as site:
            nc = await connect(site.url, name="test-site")
            messages = await stored_messages(nc.jetstream(), site_stream_name("term"))
            await nc.close()
    assert "site agent stopped" in (tmp_path / "agent.log").read_text()
    # what was published was also settled, and the other way round: nothing half-done
    assert len([m for m in messages if isinstance(m, FrameScore)]) == settled_at_exit
    assert settled_at_exit >= 2

"""Samples for retraining: a site keeps a share of what it scored in its own Object Store
bucket, within its quota (the oldest dropped first); training reads them through the hub; a
full queue or a dead store never holds up scoring."""

import asyncio
import contextlib
import time

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats
from imaging.fits_reader import read_frame
from protos import FrameScore, QualityLabel
from site_agent.learning_settings import SampleSettings
from site_agent.pipeline import FrameWork
from site_agent.samples import SAMPLE_QUEUE, SampleSender
from site_agent.state import FileFingerprint
from tests.examples import every_message
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import hub_sourcing, running_hub, stored_messages
from training.fleet_samples import download_site_samples, read_fleet_samples

QUOTA_BYTES = 250_000
"""Three quality samples (~68 kB each: a 64 kB tensor and its description) and not four."""


async def test_a_site_keeps_its_newest_samples_within_its_quota_and_training_reads_them(
    tmp_path,
):
    labels = [QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD, QualityLabel.GOOD] * 2
    with running_hub(tmp_path / "hub") as hub:
        async with hub_sourcing(hub, ["east"]) as hub_js:
            settings = site_settings(
                tmp_path,
                "east",
                hub,
                search_transients=True,  # its lane takes the frame after the sampler saw it
                samples=SampleSettings(quota_bytes=QUOTA_BYTES, min_interval_s=0.0),
            )
            async with running_agent(settings) as east:
                simulated_frames(settings.watch_dir, labels)
                sender = east.learning.samples
                assert await wait_until(lambda: sender.stored == len(labels), timeout_s=120)
                nc = await connect(hub.url, name="test-trainer")
                try:
                    download = await download_site_samples(nc, ["east"], tmp_path / "samples")
                finally:
                    await nc.close()
            scores = [m for m in await stored_messages(hub_js) if isinstance(m, FrameScore)]

    assert download.unreachable == {}
    assert download.objects == {"east": 6}  # three samples, two objects each
    held = sum(p.stat().st_size for p in (tmp_path / "samples" / "east").iterdir())
    assert held <= QUOTA_BYTES
    samples = read_fleet_samples(tmp_path / "samples", "quality", min_verdict_confidence=0.0)
    assert samples.skipped == []
    newest = {s.frame.sha256: s for s in scores[-3:]}
    assert set(samples.keys) == set(newest)
    assert samples.sites == ["east"] * 3
    for key, label in zip(samples.keys, samples.labels, strict=True):
        assert ("good", "medium", "bad")[label] == newest[key].label.value
    assert samples.tensors.shape == (3, 1, 128, 128)


def _scored_work(tmp_path) -> FrameWork:
    [(path, _)] = simulated_frames(tmp_path / "frames", [QualityLabel.GOOD])
    score = next(m for m in every_message("east") if isinstance(m, FrameScore))
    return FrameWork(path, FileFingerprint.of(path), 0.0, frame=read_frame(path), message=score)


async def test_a_full_queue_drops_samples_without_holding_up_a_frame(tmp_path):
    sender = SampleSender("east", SampleSettings(min_interval_s=0.0))
    work = _scored_work(tmp_path)
    started = time.monotonic()
    for _ in range(SAMPLE_QUEUE + 4):  # nobody sends: the queue fills
        await sender.stage.run(work)
    assert sender.queue.qsize() == SAMPLE_QUEUE
    assert sender.stage.dropped == 4
    assert time.monotonic() - started < 5.0


async def test_a_dead_store_drops_samples_and_the_sender_goes_on(
    tmp_path, nats_server: EmbeddedNats
):
    sender = SampleSender("east", SampleSettings(min_interval_s=0.0))
    work = _scored_work(tmp_path)
    nc = await connect(nats_server.url, name="test-site")
    try:
        js = nc.jetstream(timeout=0.5)
        sending = asyncio.create_task(sender.run(js))
        await sender.stage.run(work)
        assert await wait_until(lambda: sender.stored == 1, timeout_s=10)
        nats_server.stop()
        await sender.stage.run(work)
        await sender.stage.run(work)
        assert await wait_until(lambda: sender.failed == 2, timeout_s=20)
        assert not sending.done()  # still sending: the next sample tries again
        sending.cancel()
    finally:
        with contextlib.suppress(Exception):  # its server is gone
            await nc.close()

"""Files that once stopped a site agent without a word: a name that is not UTF-8, a name with a
newline that forged an `ALERT bad frame` line, a tile-compressed header astropy cannot parse,
and a frame written slowly, which was rejected half-written. A real agent on a real nats-server
rejects and quarantines each bad file under a printable name, writes no forged log line, scores
every frame that comes after, and waits for a slow frame instead of rejecting it."""

import asyncio
import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from protos import FrameRejected, FrameScore, QualityLabel, RejectReason
from site_agent.ingest import is_frame_name
from site_agent.quarantine import REASON_SUFFIX
from site_agent.settings import SiteAgentSettings
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import frame_messages_at_hub

NOT_UTF8_NAME = os.fsdecode(b"bad_\xff.fits")
FORGING_NAME = "x\nALERT bad frame site=a.fits"
FORGING_SHOWN = "x\\nALERT bad frame site=a.fits"
UNPARSABLE_NAME = "unparsable.fits.fz"
GOOD_LABELS = [QualityLabel.GOOD, QualityLabel.GOOD, QualityLabel.MEDIUM]


def _not_a_frame() -> bytes:
    return b"this is a text file, not an image\n" * 100


def _unparsable_compressed() -> bytes:
    """A tile-compressed frame whose ZBITPIX card has no valid value (`ZBITPIX = abc`)."""
    pixels = np.random.default_rng(0).normal(1000.0, 10.0, (64, 64)).astype(np.float32)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(pixels)]).writeto(buffer)
    raw = bytearray(buffer.getvalue())
    start = raw.index(b"ZBITPIX =")
    raw[start : start + 80] = b"ZBITPIX = abc".ljust(80)
    return bytes(raw)


@pytest.fixture
def solo(tmp_path, nats_server, fleet_bus, caplog):
    """Settings of a site agent on a single server (with these overrides; no transient search:
    these tests are about the frame path) and a JetStream context there; every log record is
    captured."""
    caplog.set_level(logging.INFO)
    _, js = fleet_bus

    def settings(**overrides: object) -> SiteAgentSettings:
        url = nats_server.url
        values = {"nats_url": url, "hub_js_domain": None, "search_transients": False, **overrides}
        return site_settings(tmp_path, "solo", None, **values)

    return settings, js


def _frames_left_in(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if is_frame_name(name))


def _assert_no_forged_lines(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        message = record.getMessage()
        assert "\n" not in message, message
        assert not message.startswith("ALERT bad frame"), message


async def _rejected_then_scored(agent, settings, js, bad: dict[str, bytes]):
    """Write the bad files, wait for their rejection, then good frames; all messages."""
    for name, content in bad.items():
        (settings.watch_dir / name).write_bytes(content)
    assert await wait_until(lambda: agent.status().frames_rejected == len(bad), timeout_s=30), (
        agent.status()
    )
    good = simulated_frames(settings.watch_dir, GOOD_LABELS)
    scores, rejections = await frame_messages_at_hub(js, len(bad) + len(good), timeout_s=60)
    return [path.name for path, _ in good], scores, rejections


async def test_a_forging_name_and_an_unparsable_header_are_quarantined_and_scoring_goes_on(
    solo, caplog
):
    make_settings, js = solo
    settings = make_settings()
    async with running_agent(settings) as agent:
        bad = {FORGING_NAME: _not_a_frame(), UNPARSABLE_NAME: _unparsable_compressed()}
        good, scores, rejections = await _rejected_then_scored(agent, settings, js, bad)

    assert sorted(s.frame.file_name for s in scores) == sorted(good)
    rejected = {r.file_name: r for r in rejections}
    assert set(rejected) == {FORGING_SHOWN, UNPARSABLE_NAME}
    assert rejected[UNPARSABLE_NAME].reason is RejectReason.NOT_FITS
    assert "ZBITPIX" in rejected[UNPARSABLE_NAME].message
    assert _frames_left_in(settings.watch_dir) == sorted(good)
    for shown in rejected:
        assert (settings.quarantine_dir / shown).is_file()
        assert (settings.quarantine_dir / (shown + REASON_SUFFIX)).is_file()
    _assert_no_forged_lines(caplog)


async def test_a_good_frame_named_to_forge_an_alert_is_logged_on_one_line(tmp_path, solo, caplog):
    make_settings, js = solo
    settings = make_settings()
    async with running_agent(settings) as agent:
        (staged,) = simulated_frames(tmp_path / "staged", [QualityLabel.GOOD])
        staged[0].rename(settings.watch_dir / FORGING_NAME)
        (score,), _ = await frame_messages_at_hub(js, 1, timeout_s=60)
        assert agent.status().frames_scored == 1

    assert isinstance(score, FrameScore)
    assert score.frame.file_name == FORGING_SHOWN
    assert any(FORGING_SHOWN in record.getMessage() for record in caplog.records)
    _assert_no_forged_lines(caplog)


async def test_a_file_whose_name_is_not_utf8_is_quarantined_and_scoring_goes_on(solo, caplog):
    make_settings, js = solo
    settings = make_settings()
    async with running_agent(settings) as agent:
        bad = {NOT_UTF8_NAME: _not_a_frame()}
        good, scores, rejections = await _rejected_then_scored(agent, settings, js, bad)

    assert sorted(s.frame.file_name for s in scores) == sorted(good)
    (rejection,) = rejections
    assert isinstance(rejection, FrameRejected)
    assert rejection.file_name == "bad_\\xff.fits"
    assert rejection.reason is RejectReason.NOT_FITS
    assert _frames_left_in(settings.watch_dir) == sorted(good)  # moved out
    assert (settings.quarantine_dir / "bad_\\xff.fits").is_file()
    _assert_no_forged_lines(caplog)


async def test_a_frame_written_slowly_is_scored_and_one_that_dies_midway_is_rejected(
    tmp_path, solo
):
    make_settings, js = solo
    settings = make_settings(settle_s=1.0, incomplete_timeout_s=6.0)
    staged = [path for path, _ in simulated_frames(tmp_path / "staged", GOOD_LABELS[:2])]
    slow, dead = (path.read_bytes() for path in staged)
    async with running_agent(settings) as agent:
        with (settings.watch_dir / "slow.fits").open("wb") as handle:
            (settings.watch_dir / "dead.fits").write_bytes(dead[: len(dead) // 2])
            handle.write(slow[: len(slow) // 2])
            handle.flush()
            await asyncio.sleep(4.0)  # a camera pausing mid-write, well past settle_s
            assert agent.status().frames_rejected == 0
            handle.write(slow[len(slow) // 2 :])
        scores, rejections = await frame_messages_at_hub(js, 2, timeout_s=30)

    assert [s.frame.file_name for s in scores] == ["slow.fits"]
    assert [(r.file_name, r.reason) for r in rejections] == [("dead.fits", RejectReason.TRUNCATED)]
    assert (settings.quarantine_dir / "dead.fits").stat().st_size == len(dead) // 2

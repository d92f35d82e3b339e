"""Follow-ups carried out on an ASCOM Alpaca telescope: a real site agent on a real leaf
nats-server, commands published at the hub, a real `alpaca-simulators` server for the mount,
filter wheel, safety monitor and weather, and the sky camera for pixels."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alpaca.telescope import Telescope as AlpacaTelescope
from astropy.io import fits

from fleetbus.client import publish
from fleetbus.server import free_port
from protos import (
    FollowUpCancel,
    FollowUpState,
    FrameScore,
    QualityLabel,
    SiteHeartbeat,
    SkyTarget,
    stable_message_id,
)
from protos.base import utc_now
from site_agent.settings import AlpacaDevices, SiteAgentSettings
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import hub_sourcing, running_hub, stored_messages
from tests.telescopes import (
    HORIZON_LIMIT_DEG,
    PIXEL_SCALE_ARCSEC,
    Telescope,
    followup_request,
    night_site,
    overhead_target,
    running_telescope,
    statuses,
    wait_for_status,
)

pytestmark = pytest.mark.slow  # the simulators and the sky camera take ~30 s to start

SITE = "obs"


@pytest.fixture(scope="module")
def telescope(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Telescope]:
    with running_telescope(tmp_path_factory.mktemp("telescope"), night_site()) as scope:
        yield scope


@pytest.fixture
def safe_sky(telescope: Telescope) -> Iterator[Telescope]:
    """The telescope with its safety monitor reporting safe, and again after the test."""
    telescope.set_safe(True)
    yield telescope
    telescope.set_safe(True)


def _settings(root: Path, hub: object, devices: AlpacaDevices, site: object) -> SiteAgentSettings:
    return site_settings(
        root,
        SITE,
        hub,  # type: ignore[arg-type]
        alpaca=devices,
        location=site,
        pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
        horizon_limit_deg=HORIZON_LIMIT_DEG,
        search_transients=False,
    )


def _frames_for(settings: SiteAgentSettings, request_id: str) -> list[Path]:
    return sorted(settings.watch_dir.glob(f"{SITE}-{request_id}-*.fits"))


async def test_a_request_is_slewed_to_exposed_n_times_scored_and_reported_done(tmp_path, safe_sky):
    target = overhead_target(safe_sky.site)
    with running_hub(tmp_path / "hub") as hub:
        settings = _settings(tmp_path, hub, safe_sky.devices(), safe_sky.site)
        async with hub_sourcing(hub, [SITE]) as js, running_agent(settings) as agent:
            await publish(js, followup_request(SITE, "fu-1", target, count=3, exptime_s=1.0))
            reports = await wait_for_status(
                js, "fu-1", lambda s: s.state is FollowUpState.DONE, timeout_s=150
            )
            scored = [m for m in await stored_messages(js) if isinstance(m, FrameScore)]
            frames_scored = agent.status().frames_scored
    mount = AlpacaTelescope(safe_sky.simulators.address, 0)
    states = [(r.state, r.exposures_done) for r in reports]
    assert states[0] == (FollowUpState.ACCEPTED, 0)
    assert [done for state, done in states if state is FollowUpState.OBSERVING] == [0, 1, 2, 3]
    final = reports[-1]
    assert (final.state, final.exposures_done, final.exposures_total) == (FollowUpState.DONE, 3, 3)
    assert mount.RightAscension * 15.0 == pytest.approx(target.ra_deg, abs=0.01)
    assert mount.Declination == pytest.approx(target.dec_deg, abs=0.01)
    files = _frames_for(settings, "fu-1")
    assert sorted(final.frames) == [f.name for f in files]
    ours = [s for s in scored if s.frame.file_name in final.frames]
    assert len(ours) == 3  # each frame scored by the agent and published
    assert all(s.frame.pointing is not None for s in ours)
    assert ours[0].frame.pointing.ra_deg == pytest.approx(target.ra_deg, abs=0.01)
    assert frames_scored >= 3
    header = fits.getheader(files[0])
    assert header["FOLLOWUP"] == "fu-1"
    assert header["EXPTIME"] == 1.0 and header["FILTER"] == "r"
    assert header["CRVAL1"] == pytest.approx(target.ra_deg, abs=0.01)
    assert header["CD2_2"] == pytest.approx(PIXEL_SCALE_ARCSEC / 3600.0)


async def test_a_cancel_during_exposure_two_of_five_stops_it_and_reports_cancelled(
    tmp_path, safe_sky
):
    target = overhead_target(safe_sky.site)
    with running_hub(tmp_path / "hub") as hub:
        settings = _settings(tmp_path, hub, safe_sky.devices(), safe_sky.site)
        async with hub_sourcing(hub, [SITE]) as js, running_agent(settings):
            await publish(js, followup_request(SITE, "fu-2", target, count=5, exptime_s=4.0))
            await wait_for_status(js, "fu-2", lambda s: s.exposures_done == 1, timeout_s=150)
            await asyncio.sleep(1.5)  # into the second exposure
            cancel = FollowUpCancel(
                message_id=stable_message_id(FollowUpCancel.KIND, SITE, "fu-2"),
                site_id=SITE,
                request_id="fu-2",
                reason="re-planned to another site",
            )
            await publish(js, cancel)
            await wait_for_status(
                js, "fu-2", lambda s: s.state is FollowUpState.CANCELLED, timeout_s=30
            )
            await asyncio.sleep(8.0)  # longer than the aborted exposure would have lasted
            reports = await statuses(js, "fu-2")
    cancelled = [r for r in reports if r.state is FollowUpState.CANCELLED]
    assert cancelled and cancelled[0].reason == "re-planned to another site"
    assert cancelled[0].exposures_done == 1
    assert max(r.exposures_done for r in reports) == 1
    assert len(_frames_for(settings, "fu-2")) == 1
    assert reports[-1].state is FollowUpState.CANCELLED


async def test_an_unsafe_safety_monitor_stops_the_request_and_fails_it_with_its_reason(
    tmp_path, safe_sky
):
    target = overhead_target(safe_sky.site)
    with running_hub(tmp_path / "hub") as hub:
        settings = _settings(tmp_path, hub, safe_sky.devices(), safe_sky.site)
        async with hub_sourcing(hub, [SITE]) as js, running_agent(settings):
            await publish(js, followup_request(SITE, "fu-3", target, count=4, exptime_s=3.0))
            await wait_for_status(js, "fu-3", lambda s: s.exposures_done == 1, timeout_s=150)
            safe_sky.set_safe(False)
            reports = await wait_for_status(
                js, "fu-3", lambda s: s.state is FollowUpState.FAILED, timeout_s=30
            )
    final = reports[-1]
    assert final.state is FollowUpState.FAILED
    assert final.reason == "safety monitor reports unsafe"
    assert final.exposures_done <= 2
    assert len(_frames_for(settings, "fu-3")) == final.exposures_done


async def test_bad_requests_are_refused_with_reasons_while_the_agent_goes_on_scoring(
    tmp_path, safe_sky
):
    target = overhead_target(safe_sky.site)
    never_up = SkyTarget(name="north", ra_deg=target.ra_deg, dec_deg=80.0)  # from lat -30
    with running_hub(tmp_path / "hub") as hub:
        settings = _settings(tmp_path, hub, safe_sky.devices(), safe_sky.site)
        async with hub_sourcing(hub, [SITE]) as js, running_agent(settings) as agent:
            first = followup_request(SITE, "fu-4", target, count=1, exptime_s=2.0)
            await publish(js, first)
            await publish(
                js, followup_request(SITE, "fu-4", target, count=2, exptime_s=1.0, variant="again")
            )
            await publish(js, followup_request(SITE, "fu-5", never_up, count=1, exptime_s=1.0))
            late = followup_request(
                SITE,
                "fu-6",
                target,
                count=1,
                exptime_s=1.0,
                deadline=utc_now() - timedelta(minutes=1),
            )
            await publish(js, late)
            cancel = FollowUpCancel(
                message_id=stable_message_id(FollowUpCancel.KIND, SITE, "nobody"),
                site_id=SITE,
                request_id="nobody",
                reason="operator",
            )
            await publish(js, cancel)
            no_filter = followup_request(
                SITE, "fu-8", target, count=1, exptime_s=1.0, filter_name="z"
            )
            await publish(js, no_filter)
            simulated_frames(settings.watch_dir, [QualityLabel.GOOD] * 2, seed=9)
            assert await wait_until(lambda: agent.status().frames_scored >= 2, timeout_s=60)
            unknown = await wait_for_status(js, "nobody", lambda s: True, timeout_s=20)
            below = await wait_for_status(js, "fu-5", lambda s: True, timeout_s=20)
            duplicate = await wait_for_status(
                js, "fu-4", lambda s: "duplicate" in (s.reason or ""), timeout_s=20
            )
            expired = await wait_for_status(js, "fu-6", lambda s: True, timeout_s=20)
            wrong_filter = await wait_for_status(
                js, "fu-8", lambda s: s.state is FollowUpState.FAILED, timeout_s=90
            )
            beats = [m for m in await stored_messages(js) if isinstance(m, SiteHeartbeat)]
    assert unknown[0].state is FollowUpState.FAILED and unknown[0].reason == "unknown request id"
    assert below[0].state is FollowUpState.FAILED
    assert "below the horizon limit" in (below[0].reason or "")
    assert any("duplicate request id refused" in (s.reason or "") for s in duplicate)
    assert (
        expired[0].state is FollowUpState.FAILED and expired[0].reason == "deadline already passed"
    )
    assert wrong_filter[-1].state is FollowUpState.FAILED
    assert (wrong_filter[-1].reason or "").startswith("filter wheel: no filter 'z' in the wheel")
    conditions = [b.conditions for b in beats if b.conditions is not None]
    assert conditions and conditions[-1].safe is True
    assert conditions[-1].cloud_cover_pct is not None


async def test_an_absent_alpaca_server_fails_the_request_with_the_device_error_and_scoring_goes_on(
    tmp_path,
):
    site = night_site()
    target = overhead_target(site)
    nobody = AlpacaDevices(address=f"127.0.0.1:{free_port()}", slew_timeout_s=5.0)
    with running_hub(tmp_path / "hub") as hub:
        settings = _settings(tmp_path, hub, nobody, site)
        async with hub_sourcing(hub, [SITE]) as js, running_agent(settings) as agent:
            await publish(js, followup_request(SITE, "fu-7", target, count=2, exptime_s=1.0))
            reports = await wait_for_status(
                js, "fu-7", lambda s: s.state is FollowUpState.FAILED, timeout_s=60
            )
            simulated_frames(settings.watch_dir, [QualityLabel.GOOD], seed=10)
            assert await wait_until(lambda: agent.status().frames_scored >= 1, timeout_s=60)
            beats = [m for m in await stored_messages(js) if isinstance(m, SiteHeartbeat)]
    assert reports[-1].state is FollowUpState.FAILED
    assert (reports[-1].reason or "").startswith("safety monitor:")
    assert beats and all(b.conditions is None for b in beats)

"""Site health: a stale heartbeat means offline, mostly bad recent frames mean weather; and
quality over time is binned with its rates and fractions."""

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.quality import quality_bins, site_status
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store.writes import write_heartbeats
from coordinator.summary import fleet_summary
from coordinator.views import SiteStatus
from protos import SiteHeartbeat, stable_message_id
from protos.base import utc_now

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_a_stale_or_missing_heartbeat_means_offline_with_an_alert():
    stale, alerts = site_status(
        NOW - timedelta(seconds=90), ["good"], NOW, stale_s=60, bad_fraction=0.5
    )
    missing, _ = site_status(None, ["good"], NOW, stale_s=60, bad_fraction=0.5)
    assert (stale, missing) == (SiteStatus.OFFLINE, SiteStatus.OFFLINE)
    assert alerts == ["last heartbeat 90 s ago (stale after 60 s)"]


def test_mostly_bad_recent_frames_mean_weather():
    recent = ["bad"] * 5 + ["good"] * 5
    weather, alerts = site_status(NOW, recent, NOW, stale_s=60, bad_fraction=0.5)
    fine, none = site_status(NOW, recent[1:], NOW, stale_s=60, bad_fraction=0.5)
    assert (weather, fine, none) == (SiteStatus.WEATHER, SiteStatus.ONLINE, [])
    assert alerts == ["50% of the last 10 frames are bad (weather?)"]


def test_quality_bins_give_rates_fractions_and_means():
    times = [NOW + timedelta(minutes=m) for m in (1, 2, 3, 70)]
    bins = quality_bins(
        times,
        ["good", "bad", "bad", "medium"],
        [2.0, 4.0, None, 3.0],
        [100.0, 200.0, 300.0, 400.0],
        [0.9, 0.5, 0.4, None],
        start=NOW,
        bin_s=3600,
    )
    assert [(b.frames, b.frames_per_hour) for b in bins] == [(3, 3.0), (1, 1.0)]
    assert bins[0].fraction_bad == pytest.approx(2 / 3)
    assert (bins[0].mean_fwhm_arcsec, bins[0].mean_background_adu) == (3.0, 200.0)
    assert bins[1].start == NOW + timedelta(hours=1) and bins[1].mean_transparency is None


@pytest.mark.parametrize("skew_min", [-10, 10])
def test_a_site_whose_clock_is_off_is_online_and_one_ahead_is_flagged(tmp_path, skew_min):
    """Judged by when the centre received its heartbeat, not by the site's own stamp."""
    engine = open_store(f"sqlite:///{tmp_path / 'centre.sqlite3'}")
    stamped = utc_now() + timedelta(minutes=skew_min)
    heartbeat = SiteHeartbeat(
        message_id=stable_message_id(SiteHeartbeat.KIND, "skewed", "1"),
        site_id="skewed",
        created_at=stamped,
        agent_version="0.1.0",
        disk_free_bytes=10**10,
    )
    with engine.begin() as conn:
        write_heartbeats(conn, [heartbeat])

    (site,) = fleet_summary(engine, CoordinatorSettings()).sites

    assert site.status is SiteStatus.ONLINE
    clock_alerts = [alert for alert in site.alerts if "clock" in alert]
    assert clock_alerts == (
        ["site clock runs 10 min ahead of the centre's (check its NTP)"] if skew_min > 0 else []
    )

"""Site health: a stale heartbeat means offline, mostly bad recent frames mean weather; and
quality over time is binned with its rates and fractions."""

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.quality import quality_bins, site_status
from coordinator.views import SiteStatus

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

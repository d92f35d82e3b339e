"""Follow-up scheduling: small constraints each veto what they should and agree with astropy and
astroplan, the planner picks a site where the target is up at night and, between otherwise equal
sites, the one with the better expected quality (and says why), only sources are planned, and
the dispatcher re-plans a request nobody accepted and withdraws it from its site."""

import dataclasses
from datetime import UTC, datetime, timedelta

import astroplan
import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord, get_body
from astropy.time import Time
from sqlalchemy import select

from coordinator.ingest import StoreWriter
from coordinator.scheduling import outbox
from coordinator.scheduling.constraints import (
    AirmassConstraint,
    AltitudeConstraint,
    AtNightConstraint,
    MoonSeparationConstraint,
    QueueConstraint,
    SiteOnlineConstraint,
)
from coordinator.scheduling.dispatcher import plan_round
from coordinator.scheduling.expected import SiteQuality, expected_quality
from coordinator.scheduling.planner import best_plan, default_constraints
from coordinator.scheduling.sky import SiteState, SkyAtSite, sky_at_site, time_grid
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.store.tables import FollowUp
from protos import FollowUpCancel, QualityLabel, SiteConditions
from tests.coordinators import make_candidate, make_config, make_heartbeat, make_score
from tests.followups import wrap_longitude, zenith_ra_deg

pytestmark = pytest.mark.usefixtures("offline_iers")  # skies computed here, as offline

WHEN = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # local night at La Silla, midday in India
DAY = timedelta(hours=24)
LA_SILLA = SiteState("la-silla", -29.26, -70.73, 2400.0, 20.0, online=True, queue_depth=0)
HANLE = SiteState("hanle", 32.78, 78.96, 4500.0, 20.0, online=True, queue_depth=0)
GOOD_NIGHT = SiteQuality(seeing_arcsec=1.1, transparency=0.95, bad_fraction=0.0, frames=20)
POOR_NIGHT = SiteQuality(seeing_arcsec=2.8, transparency=0.6, bad_fraction=0.4, frames=20)


def twin(site_id: str, quality: SiteQuality, **changes: object) -> SiteState:
    """A site at La Silla's place with its own quality: otherwise equal to every other twin."""
    return dataclasses.replace(LA_SILLA, site_id=site_id, quality=quality, **changes)


def sky_of(site: SiteState, ra: float, dec: float, span: timedelta = DAY) -> SkyAtSite:
    times = time_grid(WHEN, span, timedelta(minutes=15))
    return sky_at_site(site, ra, dec, times, Time(times))


def test_each_constraint_vetoes_only_its_own_condition():
    ra = zenith_ra_deg(LA_SILLA.lon_deg, WHEN)
    view = sky_of(LA_SILLA, ra, -29.0)
    altitude = AltitudeConstraint().score(view)
    airmass = AirmassConstraint(2.0).score(view)
    night = AtNightConstraint(-12.0).score(view)
    assert altitude[0] == airmass[0] == night[0] == 1.0  # overhead at night
    assert np.all(altitude[view.target_alt_deg < 20.0] == 0.0)
    assert np.all(airmass[view.airmass > 2.0] == 0.0)
    assert 0 < airmass.sum() < altitude.sum() < len(view.times)
    assert night.sum() < len(view.times)  # the day comes
    moon = view.moon_separation_deg
    limit = float(np.median(moon))
    assert MoonSeparationConstraint(limit).score(view).tolist() == (moon >= limit).tolist()


def test_the_sky_agrees_with_astropy_and_astroplan():
    times = time_grid(WHEN, DAY, timedelta(minutes=15))
    obstime = Time(times)
    observer = LA_SILLA.observer
    for ra, dec in [(0.0, 0.0), (150.0, -30.0), (300.0, 60.0), (45.0, -80.0), (359.9, 10.0)]:
        view = sky_at_site(LA_SILLA, ra, dec, times, obstime)
        target = SkyCoord(ra * u.deg, dec * u.deg)
        altitude = observer.altaz(obstime, target).alt.deg
        moon = get_body("moon", obstime, observer.location)
        moon = moon.separation(target, origin_mismatch="ignore").deg
        assert np.abs(altitude - view.target_alt_deg).max() < 0.02
        assert np.abs(moon - view.moon_separation_deg).max() < 0.02
        fixed = astroplan.FixedTarget(target)
        clear = np.abs(view.target_alt_deg - 20.0) > 0.05  # away from the limit itself
        theirs = astroplan.AltitudeConstraint(min=20 * u.deg)(observer, fixed, times=obstime)
        ours = AltitudeConstraint().score(view).astype(bool)
        assert (np.ravel(theirs)[clear] == ours[clear]).all()


def test_site_state_constraints_follow_health_and_queue():
    offline = twin("x", SiteQuality(), online=False)
    busy = twin("y", SiteQuality(), queue_depth=15)
    ra = zenith_ra_deg(LA_SILLA.lon_deg, WHEN)
    span = timedelta(minutes=15)
    assert SiteOnlineConstraint().score(sky_of(offline, ra, -29.0, span)).tolist() == [0.0]
    assert QueueConstraint(20).score(sky_of(busy, ra, -29.0, span)).tolist() == [0.25]


def test_the_planner_picks_the_site_where_the_target_is_up_at_night():
    settings = CoordinatorSettings(min_moon_separation_deg=0.0)
    ra = zenith_ra_deg(LA_SILLA.lon_deg, WHEN)
    constraints = default_constraints(settings)
    plan = best_plan(ra, -29.0, [HANLE, LA_SILLA], constraints, WHEN, timedelta(hours=2), 2.0)
    assert plan is not None
    assert (plan.site_id, plan.start) == ("la-silla", WHEN)
    offline = twin("la-silla", SiteQuality(), online=False)
    assert (
        best_plan(ra, -29.0, [HANLE, offline], constraints, WHEN, timedelta(hours=2), 2.0) is None
    )


def test_a_simulated_site_is_planned_in_the_night_of_its_own_sky_clock():
    """The demo puts each simulated site in a night of its own: at midday in India Hanle is
    planned at once when its sky is offset to La Silla's night hour, and not otherwise."""
    settings = CoordinatorSettings(min_moon_separation_deg=0.0)
    ra = zenith_ra_deg(LA_SILLA.lon_deg, WHEN)
    # the same local time at Hanle as at La Silla now: shift by their longitude difference
    offset_s = (HANLE.lon_deg - LA_SILLA.lon_deg) / 360.0 * 86400.0 * (365.2422 / 366.2422)
    shifted = dataclasses.replace(HANLE, sky_offset_s=-offset_s, lat_deg=LA_SILLA.lat_deg)
    constraints = default_constraints(settings)
    unshifted = dataclasses.replace(shifted, sky_offset_s=0.0)

    plan = best_plan(ra, -29.0, [shifted], constraints, WHEN, timedelta(hours=2), 2.0)

    assert plan is not None and plan.start == WHEN  # planned now, by the wall clock
    assert best_plan(ra, -29.0, [unshifted], constraints, WHEN, timedelta(hours=2), 2.0) is None


def test_expected_quality_fades_from_what_was_measured_to_a_typical_night():
    hours = np.array([0.0, 2.0, 24.0])
    zenith = np.ones(3)
    good = expected_quality(GOOD_NIGHT, hours, zenith, persistence_h=2.0)
    assert good.seeing_arcsec.tolist() == pytest.approx([1.1, 1.55, 2.0], abs=0.01)
    assert good.snr[0] > good.snr[1] > good.snr[2]
    unsafe = expected_quality(SiteQuality(safe=False), hours, zenith, persistence_h=2.0)
    assert unsafe.snr[0] == 0.0 < unsafe.snr[1]
    cloudy = expected_quality(SiteQuality(cloud_cover_pct=80.0), hours, zenith, 2.0)
    assert cloudy.transparency[0] == pytest.approx(0.2)
    low = expected_quality(GOOD_NIGHT, np.zeros(2), np.array([1.0, 2.0]), 2.0)
    assert low.snr[1] < low.snr[0]  # extinction and seeing grow with airmass


def test_a_site_with_better_expected_quality_wins_an_otherwise_equal_target():
    settings = CoordinatorSettings(min_moon_separation_deg=0.0)
    ra = zenith_ra_deg(LA_SILLA.lon_deg, WHEN)
    sites = [twin("poor", POOR_NIGHT), twin("good", GOOD_NIGHT), twin("unknown", SiteQuality())]
    plan = best_plan(ra, -29.0, sites, default_constraints(settings), WHEN, DAY, 2.0)
    assert plan is not None
    assert (plan.site_id, plan.start) == ("good", WHEN)
    why = plan.explanation
    assert why["deciding"]["constraint"] == "expected_quality"
    assert why["deciding"]["detail"].startswith("expected_quality 1.")
    assert [s["site_id"] for s in why["sites"]] == ["good", "unknown", "poor"]
    assert why["expected"]["seeing_arcsec"] == pytest.approx(1.1, abs=0.01)
    assert why["expected"]["snr"] > 1.0
    assert "at_night" in why["constraints_met"] and "altitude" in why["constraints_met"]
    unsafe = twin("good", dataclasses.replace(GOOD_NIGHT, safe=False))
    plan = best_plan(ra, -29.0, [unsafe, sites[0]], default_constraints(settings), WHEN, DAY, 2.0)
    assert plan is not None  # unsafe now: not now, but perhaps later, as it may clear
    assert plan.start > WHEN or plan.site_id == "poor"
    assert plan.explanation["expected"]["usable"] < 1.0 or plan.site_id == "poor"


def test_the_stored_explanation_names_the_deciding_constraint_and_score(tmp_path):
    now = datetime.now(UTC)
    settings = CoordinatorSettings(min_moon_separation_deg=0.0, heartbeat_stale_s=3600.0)
    engine = open_store(f"sqlite:///{tmp_path / 'why.sqlite3'}")
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    lon = wrap_longitude(-15.0 * (now.hour + now.minute / 60))
    writer.write("site-config", [make_config("a", 30.0, lon), make_config("b", 30.0, lon)], now)
    cloudy = SiteConditions(safe=True, cloud_cover_pct=70.0)
    beats = [make_heartbeat("a"), make_heartbeat("b").model_copy(update={"conditions": cloudy})]
    writer.write("site-heartbeat", beats, now)
    scores = [make_score("a", i, fwhm_arcsec=1.2) for i in range(5)]
    scores += [make_score("b", i, QualityLabel.MEDIUM, fwhm_arcsec=2.5) for i in range(5)]
    writer.write("frame-score", scores, now)
    ra = zenith_ra_deg(lon, now)
    candidates = [make_candidate("a", "a1", ra, 30.0), make_candidate("b", "b1", ra, 30.0)]
    writer.write("transient-candidate", candidates, now)
    (request,) = plan_round(engine, settings, now)
    with engine.connect() as conn:
        row = conn.execute(select(FollowUp)).one()
    engine.dispose()
    assert request.site_id == "a"
    why = row.explanation
    assert why["deciding"]["constraint"] == "expected_quality"
    assert {s["site_id"]: s["score"] > 0 for s in why["sites"]} == {"a": True, "b": True}
    assert why["sites"][0]["score"] == pytest.approx(row.score, rel=1e-3)
    b = why["sites"][1]  # b's cloud sensor sees 70 %: clouds now, less later
    assert b["expected"]["transparency"] < why["expected"]["transparency"]
    assert why["expected"]["seeing_arcsec"] == pytest.approx(1.2, abs=0.05)
    assert (row.plan, row.exposures_total) == ({"filter": "r", "exptime_s": 120.0, "count": 3}, 3)


def test_only_sources_are_planned(tmp_path):
    now = datetime.now(UTC)
    settings = CoordinatorSettings(min_moon_separation_deg=0.0, heartbeat_stale_s=3600.0)
    engine = open_store(f"sqlite:///{tmp_path / 'sources.sqlite3'}")
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    lon = wrap_longitude(-15.0 * (now.hour + now.minute / 60))
    writer.write("site-config", [make_config("a", 30.0, lon)], now)
    writer.write("site-heartbeat", [make_heartbeat("a")], now)
    ra = zenith_ra_deg(lon, now)
    writer.write("transient-candidate", [make_candidate("a", "a1", ra, 30.0)], now)
    assert plan_round(engine, settings, now) == []  # one detection: a candidate
    writer.write("transient-candidate", [make_candidate("a", "a2", ra, 30.0)], now)
    assert [r.site_id for r in plan_round(engine, settings, now)] == ["a"]  # two frames
    engine.dispose()


def test_a_request_nobody_accepts_is_timed_out_withdrawn_and_planned_elsewhere(tmp_path):
    now = datetime.now(UTC)
    settings = CoordinatorSettings(
        min_moon_separation_deg=0.0, heartbeat_stale_s=3600.0, followup_ack_timeout_s=60.0
    )
    engine = open_store(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    # Two sites 10 degrees apart in longitude, both at local midnight-ish.
    lon = wrap_longitude(-15.0 * (now.hour + now.minute / 60))
    writer.write(
        "site-config",
        [make_config("a", 30.0, lon), make_config("b", 30.0, wrap_longitude(lon + 10.0))],
        now,
    )
    writer.write("site-heartbeat", [make_heartbeat("a"), make_heartbeat("b")], now)
    ra = zenith_ra_deg(lon, now)
    writer.write(
        "transient-candidate",
        [make_candidate("a", "a1", ra, 30.0), make_candidate("b", "b1", ra, 30.0)],
        now,
    )
    first = plan_round(engine, settings, now)
    assert [r.site_id for r in first] == ["a"]
    assert plan_round(engine, settings, now + timedelta(seconds=30)) == []  # still waiting
    second = plan_round(engine, settings, now + timedelta(seconds=61))
    assert [r.site_id for r in second] == ["b"]
    with engine.connect() as conn:
        states = {f.request_id: f.state for f in reads.followup_views(conn)}
    commands = outbox.unsent_commands(engine)
    engine.dispose()
    assert states == {first[0].request_id: "timed_out", second[0].request_id: "sent"}
    assert second[0].deadline - (now + timedelta(seconds=61)) == pytest.approx(
        timedelta(hours=settings.followup_window_h), abs=timedelta(seconds=1)
    )
    cancels = [c for c in commands if isinstance(c, FollowUpCancel)]
    assert [(c.site_id, c.request_id) for c in cancels] == [("a", first[0].request_id)]
    assert [c.message_id for c in commands] == [
        first[0].message_id,
        cancels[0].message_id,
        second[0].message_id,
    ]

"""Follow-up scheduling: small constraints each veto what they should, the planner picks a site
where the target is up at night, and the dispatcher re-plans a request nobody accepted."""

from datetime import UTC, datetime, timedelta

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time

from coordinator.ingest import StoreWriter
from coordinator.scheduling.constraints import (
    AirmassConstraint,
    AltitudeConstraint,
    AtNightConstraint,
    MoonSeparationConstraint,
    QueueConstraint,
    SiteOnlineConstraint,
)
from coordinator.scheduling.dispatcher import plan_round
from coordinator.scheduling.planner import best_plan, default_constraints
from coordinator.scheduling.sky import SiteState, SkyAtSite
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from tests.coordinators import make_candidate, make_config, make_heartbeat

pytestmark = pytest.mark.usefixtures("offline_iers")  # skies computed here, as offline

WHEN = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # local night at La Silla, midday in India
LA_SILLA = SiteState("la-silla", -29.26, -70.73, 2400.0, 20.0, online=True, queue_depth=0)
HANLE = SiteState("hanle", 32.78, 78.96, 4500.0, 20.0, online=True, queue_depth=0)


def sky(target_alt, sun_alt, moon_sep, site=LA_SILLA) -> SkyAtSite:
    n = len(target_alt)
    return SkyAtSite(
        site=site,
        times=[WHEN + timedelta(minutes=15 * i) for i in range(n)],
        target_alt_deg=np.array(target_alt, dtype=float),
        sun_alt_deg=np.array(sun_alt, dtype=float),
        moon_separation_deg=np.array(moon_sep, dtype=float),
    )


def test_each_constraint_vetoes_only_its_own_condition():
    view = sky([10.0, 25.0, 60.0], [-20.0, -5.0, -30.0], [50.0, 50.0, 10.0])
    assert AltitudeConstraint().score(view).tolist()[0] == 0.0
    assert AltitudeConstraint().score(view)[2] > AltitudeConstraint().score(view)[1] > 0
    assert AirmassConstraint(2.0).score(view).tolist() == [0.0, 0.0, 1.0]
    assert AtNightConstraint(-12.0).score(view).tolist() == [1.0, 0.0, 1.0]
    assert MoonSeparationConstraint(30.0).score(view).tolist() == [1.0, 1.0, 0.0]


def test_site_state_constraints_follow_health_and_queue():
    offline = SiteState("x", 0.0, 0.0, 0.0, 20.0, online=False, queue_depth=0)
    busy = SiteState("y", 0.0, 0.0, 0.0, 20.0, online=True, queue_depth=15)
    assert SiteOnlineConstraint().score(sky([50.0], [-30.0], [90.0], offline)).tolist() == [0.0]
    assert QueueConstraint(20).score(sky([50.0], [-30.0], [90.0], busy)).tolist() == [0.25]


def zenith_ra_deg(site: SiteState, when: datetime) -> float:
    return float(Time(when).sidereal_time("mean", longitude=site.lon_deg * u.deg).deg)


def test_the_planner_picks_the_site_where_the_target_is_up_at_night():
    settings = CoordinatorSettings(min_moon_separation_deg=0.0)
    ra = zenith_ra_deg(LA_SILLA, WHEN)
    plan = best_plan(
        ra, -29.0, [HANLE, LA_SILLA], default_constraints(settings), WHEN, timedelta(hours=2)
    )
    assert plan is not None
    assert (plan.site_id, plan.start) == ("la-silla", WHEN)
    offline = SiteState(**{**LA_SILLA.__dict__, "online": False})
    assert (
        best_plan(
            ra, -29.0, [HANLE, offline], default_constraints(settings), WHEN, timedelta(hours=2)
        )
        is None
    )


def wrap_longitude(lon_deg: float) -> float:
    """The same meridian given in [-180, 180) degrees east."""
    return ((lon_deg + 180.0) % 360.0) - 180.0


def test_wrapped_longitudes_stay_on_the_same_meridian():
    assert wrap_longitude(181.0) == pytest.approx(-179.0)
    assert wrap_longitude(-180.0) == pytest.approx(-180.0)
    assert wrap_longitude(45.0) == pytest.approx(45.0)


def test_a_request_nobody_accepts_is_timed_out_and_planned_elsewhere(tmp_path):
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
    ra = float(Time(now).sidereal_time("mean", longitude=lon * u.deg).deg)
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
    engine.dispose()
    assert states == {first[0].request_id: "timed_out", second[0].request_id: "sent"}
    assert second[0].deadline - (now + timedelta(seconds=61)) == pytest.approx(
        timedelta(hours=settings.followup_window_h), abs=timedelta(seconds=1)
    )

"""The coordinator against real NATS: three simulated sites publish, the coordinator's figures
match what they sent, a candidate seen by two sites becomes one target, and its follow-up goes
to a site where the target is up at night and is re-planned when that site turns bad."""

import json
from datetime import UTC, datetime

import astropy.units as u
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body, get_sun
from astropy.time import Time

from coordinator.store import reads
from fleetbus.client import publish_all
from protos import FollowUpRequest, QualityLabel
from protos.base import utc_now
from tests.coordinators import (
    eventually,
    make_candidate,
    make_config,
    make_heartbeat,
    make_rejection,
    make_score,
)

pytestmark = pytest.mark.usefixtures("offline_iers")  # skies computed here, as offline

SITE_LAT_DEG = 30.0


def night_geometry(now: datetime) -> tuple[float, float, float, float]:
    """(lon of a site at local midnight, lon of one an hour later, target RA, target Dec):
    the target passes near the zenith of the first site now, away from the Moon."""
    midnight_lon = ((-15.0 * (now.hour + now.minute / 60.0) + 180.0) % 360.0) - 180.0
    time = Time(now)
    lst = time.sidereal_time("mean", longitude=midnight_lon * u.deg).deg
    frame = AltAz(obstime=time, location=EarthLocation.from_geodetic(midnight_lon, SITE_LAT_DEG))
    moon = get_body("moon", time).transform_to(frame)
    choices = []
    for dec_deg in (0.0, 15.0, 30.0, 45.0, 60.0):
        for hour_angle_deg in range(-50, 51, 10):
            target = SkyCoord((lst - hour_angle_deg) % 360.0, dec_deg, unit="deg")
            seen = target.transform_to(frame)
            margin = min(seen.alt.deg - 35.0, moon.separation(seen).deg - 40.0)
            choices.append((margin, float(target.ra.deg), dec_deg))
    margin, ra_deg, dec_deg = max(choices)
    assert margin > 0, "no test target high enough and far enough from the Moon"
    second_lon = ((midnight_lon + 15.0 + 180.0) % 360.0) - 180.0
    return midnight_lon, second_lon, ra_deg, dec_deg


def sky_at(lat_deg: float, lon_deg: float, ra_deg: float, dec_deg: float, when: datetime):
    """(Sun altitude, target altitude) in degrees at a place and time."""
    frame = AltAz(
        obstime=Time(when), location=EarthLocation.from_geodetic(lon_deg * u.deg, lat_deg * u.deg)
    )
    target = SkyCoord(ra_deg, dec_deg, unit="deg").transform_to(frame)
    return get_sun(Time(when)).transform_to(frame).alt.deg, target.alt.deg


LABELS = {
    "north": [QualityLabel.GOOD] * 6 + [QualityLabel.MEDIUM] * 3 + [QualityLabel.BAD],
    "east": [QualityLabel.GOOD] * 4 + [QualityLabel.MEDIUM] * 4 + [QualityLabel.BAD] * 2,
    "day": [QualityLabel.GOOD] * 2 + [QualityLabel.MEDIUM] * 5 + [QualityLabel.BAD] * 3,
}
FWHM = {"north": 1.5, "east": 2.5, "day": 3.5}


async def test_three_sites_figures_fusion_and_followup(coordinator, fleet_bus):
    nc, js = fleet_bus
    requests: list[FollowUpRequest] = []

    async def on_request(msg):
        requests.append(FollowUpRequest.model_validate_json(msg.data))

    await nc.subscribe("fleet.cmd.*.followup.request", cb=on_request)
    now = utc_now()
    north_lon, east_lon, ra, dec = night_geometry(now)
    day_lon = ((north_lon + 180.0 + 180.0) % 360.0) - 180.0
    locations = {"north": north_lon, "east": east_lon, "day": day_lon}
    messages = []
    for site, lon in locations.items():
        messages.append(make_config(site, SITE_LAT_DEG, lon))
        messages.append(make_heartbeat(site))
        for i, label in enumerate(LABELS[site]):
            messages.append(
                make_score(site, i, label, fwhm_arcsec=FWHM[site], background_adu=1000.0 + i)
            )
        messages += [make_rejection(site, i) for i in range(len(site))]
    await publish_all(js, messages)

    summary = await eventually(
        lambda: (s := coordinator.summary()).frames == 30 and s.rejected == 12 and s
    )
    by_site = {s.site_id: s for s in summary.sites}
    assert set(by_site) == {"north", "east", "day"}
    for site, labels in LABELS.items():
        view = by_site[site]
        assert view.frames == len(labels)
        assert (view.good, view.medium, view.bad) == tuple(
            labels.count(q) for q in (QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD)
        )
        assert view.fraction_bad == pytest.approx(labels.count(QualityLabel.BAD) / len(labels))
        assert view.mean_fwhm_arcsec == pytest.approx(FWHM[site])
        assert view.mean_background_adu == pytest.approx(1000.0 + 4.5)
        assert view.mean_transparency == pytest.approx(0.9)
        assert view.frames_last_hour == len(labels)
        assert view.rejected == len(site)
        assert view.status.value == "online"

    # The same transient seen by two sites, 0.6 arcsec apart, in different frames.
    offset = 0.6 / 3600.0
    await publish_all(
        js,
        [
            make_candidate("north", "n-0001", ra, dec, real_bogus=0.8),
            make_candidate("east", "e-0001", ra, dec + offset, real_bogus=0.7),
        ],
    )

    def one_target():
        with coordinator.engine.connect() as conn:
            targets = reads.target_views(conn)
        return targets if targets and targets[0].n_detections == 2 else None

    targets = await eventually(one_target)
    assert len(targets) == 1
    assert targets[0].sites == ["east", "north"]
    assert targets[0].confidence == pytest.approx(1 - 0.2 * 0.3)

    first = (await eventually(lambda: requests))[0]
    assert first.site_id in ("north", "east")
    sun_alt, target_alt = sky_at(
        SITE_LAT_DEG, locations[first.site_id], ra, dec, first.not_before or utc_now()
    )
    assert sun_alt < -12.0
    assert target_alt > 20.0

    # That site's frames turn bad: it is flagged "weather" and the follow-up moves elsewhere.
    bad = [make_score(first.site_id, 100 + i, QualityLabel.BAD) for i in range(10)]
    await publish_all(js, bad)
    second = (await eventually(lambda: len(requests) >= 2 and requests))[1]
    other = {"north": "east", "east": "north"}[first.site_id]
    assert second.site_id == other
    assert second.target.name == first.target.name
    weather = {s.site_id: s for s in coordinator.summary().sites}[first.site_id]
    assert weather.status.value == "weather"
    with coordinator.engine.connect() as conn:
        states = {f.request_id: f.state for f in reads.followup_views(conn)}
    assert states[first.request_id] == "replanned"
    assert states[second.request_id] == "sent"
    assert json.loads(summary.model_dump_json())["frames"] == 30
    assert datetime.now(UTC) > now

"""Shared pieces of the follow-up tests: where a target is overhead now, a store holding sites
at night with a source overhead, and site reports on a request."""

from datetime import datetime

import astropy.units as u
from astropy.time import Time
from sqlalchemy import Engine

from coordinator.ingest import StoreWriter
from protos import FollowUpState, FollowUpStatus, stable_message_id
from tests.coordinators import make_candidate, make_config, make_heartbeat


def wrap_longitude(lon_deg: float) -> float:
    """The same meridian given in [-180, 180) degrees east."""
    return ((lon_deg + 180.0) % 360.0) - 180.0


def zenith_ra_deg(lon_deg: float, when: datetime) -> float:
    """The right ascension on the meridian of a site at this longitude at `when`."""
    return float(Time(when).sidereal_time("mean", longitude=lon_deg * u.deg).deg)


def midnight_longitude(when: datetime) -> float:
    """A longitude where it is about local midnight at `when` (UTC)."""
    return wrap_longitude(-15.0 * (when.hour + when.minute / 60))


def store_source_overhead(
    engine: Engine, sites: list[str], when: datetime, lat_deg: float = 30.0
) -> tuple[float, float]:
    """Sites at one place where it is night, each heard from, and a source overhead (seen in a
    frame at each site, or in two frames of one); returns its (ra, dec)."""
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    lon = midnight_longitude(when)
    writer.write("site-config", [make_config(s, lat_deg, lon) for s in sites], when)
    writer.write("site-heartbeat", [make_heartbeat(s, when=when) for s in sites], when)
    ra = zenith_ra_deg(lon, when)
    frames = (
        [(s, f"{s}1") for s in sites] if len(sites) > 1 else [(sites[0], "f1"), (sites[0], "f2")]
    )
    writer.write(
        "transient-candidate",
        [make_candidate(site, frame, ra, lat_deg) for site, frame in frames],
        when,
    )
    return ra, lat_deg


def report(
    site_id: str,
    request_id: str,
    state: FollowUpState,
    when: datetime,
    done: int = 0,
    total: int | None = 3,
    reason: str | None = None,
) -> FollowUpStatus:
    """A site's report on a request (its id depends on the state and exposures, as a site's)."""
    return FollowUpStatus(
        message_id=stable_message_id(
            FollowUpStatus.KIND, site_id, request_id, state.value, str(done)
        ),
        site_id=site_id,
        created_at=when,
        request_id=request_id,
        state=state,
        exposures_done=done,
        exposures_total=total,
        reason=reason,
    )

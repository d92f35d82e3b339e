"""The sky seen from one site over a grid of times: target and Sun altitude, Moon distance.

Offline by construction: sites are placed by configured latitude/longitude (never a network
look-up), and a service that computes skies first calls `configure_offline_iers()` so that
astropy never downloads Earth-orientation tables.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body, get_sun
from astropy.time import Time
from astropy.utils import iers


@dataclass(frozen=True)
class SiteState:
    """A site as the planner sees it: where it is, what it can see, and how it is doing."""

    site_id: str
    lat_deg: float
    lon_deg: float
    height_m: float
    horizon_limit_deg: float
    online: bool
    queue_depth: int


@dataclass(frozen=True)
class SkyAtSite:
    """One site, one target, a grid of times (all arrays have one value per time)."""

    site: SiteState
    times: list[datetime]
    target_alt_deg: np.ndarray
    sun_alt_deg: np.ndarray
    moon_separation_deg: np.ndarray

    @property
    def airmass(self) -> np.ndarray:
        """Plane-parallel airmass (infinite at or below the horizon)."""
        sin_alt = np.sin(np.radians(self.target_alt_deg))
        with np.errstate(divide="ignore"):
            return np.where(sin_alt > 0, 1.0 / np.maximum(sin_alt, 1e-9), np.inf)


def configure_offline_iers() -> None:
    """Make astropy use the Earth-orientation (IERS) tables it ships and never download one.

    Observatories have no network, or a slow and metered one, and the coordinator must plan the
    same way without it. With astropy's defaults every altitude computed for a time after the
    bundled table was made first tries to download the IERS-A bulletin, waits for the timeout,
    then refuses the time. Here: no download, no age limit on the table, and times past its end
    use its last values; UT1-UTC stays within 0.9 s, so the error is at most about 15 arcsec of
    hour angle, far below what a 15-minute planning grid resolves.

    This is process-wide astropy configuration, so it is an explicit call where a service starts
    (`Coordinator.start`; the tests' `offline_iers` fixture), never a side effect of importing.
    """
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"


def time_grid(start: datetime, span: timedelta, step: timedelta) -> list[datetime]:
    """Times from `start` every `step`, up to `start + span` (exclusive)."""
    count = max(1, int(span / step))
    return [start + i * step for i in range(count)]


def sky_at_site(site: SiteState, ra_deg: float, dec_deg: float, times: list[datetime]) -> SkyAtSite:
    """Compute the target's altitude, the Sun's altitude and the Moon's distance at each time."""
    location = EarthLocation.from_geodetic(
        site.lon_deg * u.deg, site.lat_deg * u.deg, site.height_m * u.m
    )
    obstime = Time(times)
    frame = AltAz(obstime=obstime, location=location)
    target = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).transform_to(frame)
    # Both directions as seen from the site: the Moon is close enough for parallax to matter.
    moon = get_body("moon", obstime, location).transform_to(frame)
    return SkyAtSite(
        site=site,
        times=times,
        target_alt_deg=target.alt.deg,
        sun_alt_deg=get_sun(obstime).transform_to(frame).alt.deg,
        moon_separation_deg=moon.separation(target).deg,
    )

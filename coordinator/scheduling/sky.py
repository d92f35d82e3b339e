"""The sky seen from one site over a grid of times: the target's altitude and airmass, the
Moon's distance, and the site as an astroplan `Observer` (for its night constraint).

Fast by construction, since every round plans every source at every site: what depends only on
the site and the time grid (the apparent sidereal time, the Moon, the rotation from ICRS to
apparent coordinates of date) is computed once per round (`SiteGrid`), and a target costs a few
numpy lines: the altitude from the hour angle, the Moon's distance from both directions. Within
0.02 deg of astropy's full AltAz transformation for the altitude and of astroplan's moon
distance (aberration, under 21 arcsec, is left out; a test checks both on a 24 h grid), at
about 1 ms per target and site where astropy's transformations of a 96-time grid cost 110 ms.

Offline by construction: sites are placed by configured latitude/longitude (never a network
look-up), and a service that computes skies first calls `configure_offline_iers()` so that
astropy never downloads Earth-orientation tables.

A `SiteState` is built afresh for each scheduling round and carries its astroplan `Observer`
(whose cache holds the Sun for the round's grid) and its `SiteGrid`s: every target of the round
reuses them. (The caches are never emptied, so a site state must not outlive its round.)
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

import astropy.units as u
import numpy as np
from astroplan import FixedTarget, Observer
from astropy.coordinates import TETE, EarthLocation, SkyCoord, get_body
from astropy.time import Time, TimeDelta
from astropy.utils import iers

from coordinator.scheduling.expected import SiteQuality


@dataclass(frozen=True)
class SiteGrid:
    """What one site's sky depends on over one time grid, whatever the target."""

    lst_rad: np.ndarray
    """Local apparent sidereal time at each time."""
    moon_ra_rad: np.ndarray
    moon_dec_rad: np.ndarray
    """The Moon's direction from the site (topocentric, apparent) at each time."""
    to_apparent: np.ndarray
    """The rotation from ICRS to apparent (true equator and equinox) coordinates at the grid's
    middle time (precession and nutation over a day move a target by under an arcsecond)."""


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
    quality: SiteQuality = field(default_factory=SiteQuality)
    sky_offset_s: float = 0.0
    """Simulations only: the site's sky is that of this many seconds later (`sky_at_site`)."""
    _grids: dict[tuple[float, int], SiteGrid] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @cached_property
    def observer(self) -> Observer:
        """The site as an astroplan `Observer` (no refraction: pressure zero)."""
        location = EarthLocation.from_geodetic(
            self.lon_deg * u.deg, self.lat_deg * u.deg, self.height_m * u.m
        )
        return Observer(location=location, name=self.site_id)

    def grid(self, obstime: Time) -> SiteGrid:
        """The site's sidereal time and Moon over a time grid (computed once per grid)."""
        key = (float(obstime[0].jd), len(obstime))
        if key not in self._grids:
            location = self.observer.location
            apparent = TETE(obstime=obstime[len(obstime) // 2])
            # The Moon in apparent coordinates at its own times (one rotation each): at one
            # shared time astropy would move it along the Earth's orbit meanwhile.
            moon = get_body("moon", obstime, location).transform_to(
                TETE(obstime=obstime, location=location)
            )
            axes = SkyCoord(
                x=[1.0, 0.0, 0.0],
                y=[0.0, 1.0, 0.0],
                z=[0.0, 0.0, 1.0],
                representation_type="cartesian",
                frame="icrs",
            ).transform_to(apparent)
            self._grids[key] = SiteGrid(
                lst_rad=np.asarray(obstime.sidereal_time("apparent", location.lon).rad),
                moon_ra_rad=np.asarray(moon.ra.rad),
                moon_dec_rad=np.asarray(moon.dec.rad),
                to_apparent=np.asarray(axes.cartesian.xyz.value),
            )
        return self._grids[key]


@dataclass(frozen=True)
class SkyAtSite:
    """One site, one target, a grid of times (every array has one value per time)."""

    site: SiteState
    times: list[datetime]
    obstime: Time
    target: FixedTarget
    target_alt_deg: np.ndarray
    moon_separation_deg: np.ndarray

    @property
    def airmass(self) -> np.ndarray:
        """Plane-parallel airmass (infinite at or below the horizon)."""
        sin_alt = np.sin(np.radians(self.target_alt_deg))
        with np.errstate(divide="ignore"):
            return np.where(sin_alt > 0, 1.0 / np.maximum(sin_alt, 1e-9), np.inf)

    @property
    def hours_ahead(self) -> np.ndarray:
        """Hours from the first time of the grid to each time."""
        return np.array([(t - self.times[0]).total_seconds() / 3600.0 for t in self.times])


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


def sky_at_site(
    site: SiteState, ra_deg: float, dec_deg: float, times: list[datetime], obstime: Time
) -> SkyAtSite:
    """The target seen from the site at each time (`obstime` is `times` as one astropy `Time`,
    made once per round so the site's caches recognise it). A simulated site with a sky offset
    sees the sky of `obstime` plus the offset; its `times` stay those of the wall clock."""
    if site.sky_offset_s:
        obstime = obstime + TimeDelta(site.sky_offset_s, format="sec")
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
    grid = site.grid(obstime)
    x, y, z = grid.to_apparent @ np.asarray(coord.cartesian.xyz.value)
    ra, dec = float(np.arctan2(y, x)), float(np.arcsin(np.clip(z, -1.0, 1.0)))
    lat = np.radians(site.lat_deg)
    hour_angle = grid.lst_rad - ra
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    cos_sep = np.sin(dec) * np.sin(grid.moon_dec_rad) + np.cos(dec) * np.cos(
        grid.moon_dec_rad
    ) * np.cos(grid.moon_ra_rad - ra)
    return SkyAtSite(
        site=site,
        times=times,
        obstime=obstime,
        target=FixedTarget(coord),
        target_alt_deg=np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0))),
        moon_separation_deg=np.degrees(np.arccos(np.clip(cos_sep, -1.0, 1.0))),
    )

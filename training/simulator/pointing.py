"""Where the telescope points: the frame's TAN WCS, and the field's altitude and airmass.

Sidereal time comes from the IAU mean-sidereal-time formula with UT1 taken as UTC (an error
under a second of time), so no Earth-orientation tables are needed and nothing is downloaded.
"""

from datetime import datetime

import numpy as np
from astropy.time import Time
from astropy.wcs import WCS

from protos import SiteLocation
from training.simulator.camera import SimCamera

DEFAULT_SITE_NAME = "la-silla"
DEFAULT_SITE_LOCATION = SiteLocation(lat_deg=-29.2567, lon_deg=-70.7300, height_m=2400.0)
"""A Chilean mountain site, used when a caller names a site but gives no location."""

MIN_ALTITUDE_DEG = 15.0
"""Pointings below this altitude are refused: no robotic telescope observes there."""


def tan_wcs(camera: SimCamera, ra_deg: float, dec_deg: float, rotation_deg: float = 0.0) -> WCS:
    """A gnomonic (TAN) WCS centred on (ra, dec): north up and east left when unrotated."""
    scale_deg = camera.pixel_scale_arcsec / 3600.0
    angle = np.deg2rad(rotation_deg)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.crval = [ra_deg % 360.0, dec_deg]
    wcs.wcs.crpix = [(camera.width_px + 1) / 2.0, (camera.height_px + 1) / 2.0]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    wcs.wcs.pc = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    wcs.pixel_shape = (camera.width_px, camera.height_px)
    return wcs


def local_sidereal_time_deg(date_obs: datetime, lon_deg: float) -> float:
    """Local mean sidereal time in degrees at an east longitude."""
    days = Time(date_obs, scale="utc").jd - 2451545.0
    return float((280.46061837 + 360.98564736629 * days + lon_deg) % 360.0)


def altitude_deg(ra_deg: float, dec_deg: float, date_obs: datetime, site: SiteLocation) -> float:
    """Altitude of a sky position above the horizon at a site and time."""
    hour_angle = np.deg2rad(local_sidereal_time_deg(date_obs, site.lon_deg) - ra_deg)
    lat, dec = np.deg2rad(site.lat_deg), np.deg2rad(dec_deg)
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return float(np.rad2deg(np.arcsin(np.clip(sin_alt, -1.0, 1.0))))


def airmass(altitude: float) -> float:
    """Relative air mass at an altitude in degrees (Kasten & Young 1989), one at the zenith."""
    sin_alt = np.sin(np.deg2rad(altitude))
    return float(max(1.0, 1.0 / (sin_alt + 0.50572 * (altitude + 6.07995) ** -1.6364)))


def observable_pointing(
    rng: np.random.Generator,
    date_obs: datetime,
    site: SiteLocation,
    min_altitude_deg: float = 40.0,
) -> tuple[float, float]:
    """A random field (ra, dec) within three hours of the meridian and above `min_altitude_deg`."""
    if not MIN_ALTITUDE_DEG <= min_altitude_deg <= 80.0:
        raise ValueError(
            f"min_altitude_deg must be in [{MIN_ALTITUDE_DEG}, 80], not {min_altitude_deg}"
        )
    lst = local_sidereal_time_deg(date_obs, site.lon_deg)
    while True:
        ra = (lst + rng.uniform(-45.0, 45.0)) % 360.0
        dec = float(np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0))))
        if altitude_deg(ra, dec, date_obs, site) >= min_altitude_deg:
            return float(ra), dec

"""When the night happens at a site and where it is night on Earth: the Sun's and Moon's rise,
set and twilights over a site's night (local noon to local noon), and the day/night terminator
for the fleet map. Computed with astropy from configured coordinates only (offline: the
coordinator calls `configure_offline_iers` when it starts)."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import astropy.units as u
import numpy as np
from astroplan import moon_illumination
from astropy.coordinates import AltAz, EarthLocation, get_body, get_sun
from astropy.time import Time

from coordinator.views import NightSky, Terminator

GRID_STEP_S = 300.0
"""Spacing of the altitude grid events are found on (seconds); crossings are interpolated
between grid points, good to a few seconds."""
SUNSET_ALT_DEG = -0.833
"""Sun's altitude at sunset and sunrise: refraction and the solar radius (degrees)."""
CIVIL_ALT_DEG, NAUTICAL_ALT_DEG, ASTRONOMICAL_ALT_DEG = -6.0, -12.0, -18.0
"""Sun's altitude at the end (dusk) and start (dawn) of each twilight (degrees)."""
MOON_HORIZON_DEG = 0.125
"""Moon's altitude at its rise and set: parallax less refraction and radius (degrees)."""
TERMINATOR_STEP_DEG = 2.0
"""Longitude spacing of the terminator line on the map (degrees)."""
MIN_SUN_DEC_DEG = 0.05
"""At an equinox the terminator runs pole to pole; the Sun's declination is kept at least this
far from zero so its formula stays finite (degrees)."""
NIGHTS_CACHED = 256
"""Nights remembered (site location x night): a night's events never change."""


def night_window(lon_deg: float | None, now: datetime) -> tuple[datetime, datetime]:
    """The night containing `now` at a longitude: local mean noon to the next local noon (UTC
    noon to noon without a longitude)."""
    offset = timedelta(hours=(lon_deg or 0.0) / 15.0)
    local = now.astimezone(UTC) + offset
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if local < noon:
        noon -= timedelta(days=1)
    return noon - offset, noon - offset + timedelta(days=1)


def night_of_date(lon_deg: float | None, date: str) -> tuple[datetime, datetime]:
    """The night that starts on the evening of `date` (YYYY-MM-DD) at a longitude."""
    evening = datetime.fromisoformat(date).replace(hour=18, tzinfo=UTC)
    return night_window(lon_deg, evening - timedelta(hours=(lon_deg or 0.0) / 15.0))


def night_sky(lat_deg: float, lon_deg: float, height_m: float | None, now: datetime) -> NightSky:
    """The Sun and Moon events of the night containing `now` at a site."""
    start, _ = night_window(lon_deg, now)
    return _night_sky(round(lat_deg, 4), round(lon_deg, 4), round(height_m or 0.0), start)


@lru_cache(maxsize=NIGHTS_CACHED)
def _night_sky(lat_deg: float, lon_deg: float, height_m: float, start: datetime) -> NightSky:
    location = EarthLocation(lat=lat_deg * u.deg, lon=lon_deg * u.deg, height=height_m * u.m)
    offsets_s = np.arange(0.0, 86400.0 + GRID_STEP_S, GRID_STEP_S)
    times = Time(start) + offsets_s * u.s
    frame = AltAz(obstime=times, location=location)
    sun_alt = get_sun(times).transform_to(frame).alt.deg
    moon_alt = get_body("moon", times, location).transform_to(frame).alt.deg

    def crossing(alt: np.ndarray, level: float, rising: bool) -> datetime | None:
        above = alt > level
        edges = np.flatnonzero(above[1:] != above[:-1])
        for i in edges:
            if bool(above[i + 1]) == rising:
                fraction = (level - alt[i]) / (alt[i + 1] - alt[i])
                seconds = offsets_s[i] + fraction * GRID_STEP_S
                return start + timedelta(seconds=float(seconds))
        return None

    midnight = Time(start + timedelta(hours=12))
    return NightSky(
        night_start=start,
        night_end=start + timedelta(days=1),
        sunset=crossing(sun_alt, SUNSET_ALT_DEG, rising=False),
        civil_dusk=crossing(sun_alt, CIVIL_ALT_DEG, rising=False),
        nautical_dusk=crossing(sun_alt, NAUTICAL_ALT_DEG, rising=False),
        astronomical_dusk=crossing(sun_alt, ASTRONOMICAL_ALT_DEG, rising=False),
        astronomical_dawn=crossing(sun_alt, ASTRONOMICAL_ALT_DEG, rising=True),
        nautical_dawn=crossing(sun_alt, NAUTICAL_ALT_DEG, rising=True),
        civil_dawn=crossing(sun_alt, CIVIL_ALT_DEG, rising=True),
        sunrise=crossing(sun_alt, SUNSET_ALT_DEG, rising=True),
        moon_rise=crossing(moon_alt, MOON_HORIZON_DEG, rising=True),
        moon_set=crossing(moon_alt, MOON_HORIZON_DEG, rising=False),
        moon_illumination=float(moon_illumination(midnight)),
        dark_hours=float((sun_alt < ASTRONOMICAL_ALT_DEG).mean() * 24.0),
    )


def terminator(now: datetime) -> Terminator:
    """Where it is night on Earth at `now`: the subsolar point and the night-side polygon."""
    when = Time(now)
    sun = get_sun(when)
    sidereal_deg = when.sidereal_time("apparent", "greenwich").deg
    sun_lon = (sun.ra.deg - sidereal_deg + 180.0) % 360.0 - 180.0
    dec = float(sun.dec.deg)
    if abs(dec) < MIN_SUN_DEC_DEG:
        dec = MIN_SUN_DEC_DEG if dec >= 0 else -MIN_SUN_DEC_DEG
    lons = np.arange(-180.0, 180.0 + TERMINATOR_STEP_DEG, TERMINATOR_STEP_DEG)
    lats = np.degrees(np.arctan(-np.cos(np.radians(lons - sun_lon)) / np.tan(np.radians(dec))))
    night_pole = -90.0 if dec > 0 else 90.0
    ring_lon = [*lons.tolist(), 180.0, -180.0, -180.0]
    ring_lat = [*lats.tolist(), night_pole, night_pole, float(lats[0])]
    clockwise = night_pole < 0  # seen from outside the sphere, around the night side
    return Terminator(
        at=now,
        sun_lon_deg=float(sun_lon),
        sun_lat_deg=dec,
        night_lon_deg=ring_lon if clockwise else ring_lon[::-1],
        night_lat_deg=ring_lat if clockwise else ring_lat[::-1],
    )

"""What a frame's header says about it: where on the sky (WCS, pointing, pixel scale), when
(DATE-OBS and its older forms), for how long, through which filter, how the camera binned it,
and where it saturates; and when its coordinates are not the sky's at all (the Sun's surface).

Each function reads cards and answers None where the header says nothing usable: a frame with a
broken WCS or an odd DATE-OBS is still a frame. Reading the file and checking it against its
headers is `imaging.fits_reader`.
"""

import math
import re
from datetime import UTC, datetime

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from protos import SkyPosition

FILTER_MAX_CHARS = 32
DEFAULT_SATURATION_ADU = 65535.0
"""The saturation level assumed when neither the caller nor the header (SATURATE, an integer
BITPIX) gives one: the top of a 16-bit camera's range."""

SKY_LONGITUDE_LATITUDE = frozenset({"RA", "DEC", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT"})
"""WCS axis types of positions on the celestial sphere: equatorial, galactic, ecliptic and
supergalactic longitude and latitude."""
NON_SKY_COORDINATES = {
    "HPLN": "helioprojective solar coordinates",
    "HPLT": "helioprojective solar coordinates",
    "HGLN": "heliographic (Stonyhurst) solar coordinates",
    "HGLT": "heliographic (Stonyhurst) solar coordinates",
    "CRLN": "Carrington solar coordinates",
    "CRLT": "Carrington solar coordinates",
    "HRLN": "helioprojective-radial solar coordinates",
    "HRLT": "helioprojective-radial solar coordinates",
    "SOLX": "heliocentric solar coordinates",
    "SOLY": "heliocentric solar coordinates",
    "SOLZ": "heliocentric solar coordinates",
}
"""Coordinate systems of the solar WCS standard (Thompson 2006): images of the Sun."""
_BODY_LONGITUDE_LATITUDE = re.compile(r"^[A-Z]{2}L[NT]$")
"""wcslib's generic `xxLN`/`xxLT` pair: longitude and latitude on some body (a planet, the Sun)."""

_OLD_FITS_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2,3})\s*$")


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The celestial WCS of the image, or None when the header has none, a broken one, or one
    whose longitude and latitude are not the sky's (`non_sky_coordinates`)."""
    if non_sky_coordinates(header) is not None:
        return None
    try:
        wcs = WCS(header)
    except (ValueError, KeyError, MemoryError):
        return None
    return wcs.celestial if wcs.has_celestial else None


def non_sky_coordinates(header: fits.Header) -> str | None:
    """What the WCS's axes are when they are positions on something other than the sky (the
    Sun's disc, a planet's surface), naming the cards: None for sky coordinates or no WCS."""
    naxis = header.get("WCSAXES", header.get("NAXIS", 2))
    axes = range(1, max(2, naxis) + 1) if isinstance(naxis, int) else range(1, 3)
    found: list[str] = []
    what = ""
    for axis in axes:
        ctype = header.get(f"CTYPE{axis}")
        if not isinstance(ctype, str):
            continue
        system = ctype.split("-", 1)[0].strip().upper()
        if system in NON_SKY_COORDINATES:
            what = what or NON_SKY_COORDINATES[system]
        elif _BODY_LONGITUDE_LATITUDE.match(system) and system not in SKY_LONGITUDE_LATITUDE:
            what = what or "longitude and latitude on a body, not the sky"
        else:
            continue
        found.append(f"CTYPE{axis}={ctype.strip()!r}")
    return f"{', '.join(found)}: {what}" if found else None


def binning(header: fits.Header) -> tuple[int, int]:
    """The camera's binning (x, y) from XBINNING/YBINNING or CCDSUM ('2 2'); (1, 1) unsaid."""
    x, y = header.get("XBINNING"), header.get("YBINNING")
    if isinstance(x, int) and not isinstance(x, bool) and x >= 1:
        return x, y if isinstance(y, int) and not isinstance(y, bool) and y >= 1 else x
    ccdsum = header.get("CCDSUM")
    if isinstance(ccdsum, str):
        parts = ccdsum.split()
        if len(parts) == 2 and all(part.isdigit() and int(part) >= 1 for part in parts):
            return int(parts[0]), int(parts[1])
    return 1, 1


def pixel_scale_arcsec(wcs: WCS | None) -> float | None:
    """The mean pixel scale in arcsec per pixel, when the WCS gives a sensible one."""
    if wcs is None:
        return None
    scale_deg = float(np.mean(proj_plane_pixel_scales(wcs)))
    return scale_deg * 3600.0 if math.isfinite(scale_deg) and scale_deg > 0 else None


def pointing(wcs: WCS | None, width: int, height: int) -> SkyPosition | None:
    """The ICRS position of the frame centre."""
    if wcs is None:
        return None
    try:
        centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2).icrs
    except (ValueError, AttributeError):
        return None
    ra_deg, dec_deg = float(centre.ra.deg) % 360.0, float(centre.dec.deg)
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)):
        return None
    return SkyPosition(ra_deg=ra_deg, dec_deg=dec_deg)


def date_obs_utc(header: fits.Header) -> datetime | None:
    """The start of the exposure in UTC, from DATE-OBS (with TIME-OBS or UT) or MJD-OBS.

    A DATE-OBS without a time of day is used alone only when neither TIME-OBS, UT nor
    MJD-OBS says more; the pre-2000 DD/MM/YY form is understood.
    """
    date = header.get("DATE-OBS")
    date = date.strip() if isinstance(date, str) else ""
    old_style = _OLD_FITS_DATE.match(date)
    if old_style:
        day, month, year = (int(part) for part in old_style.groups())
        # Pre-2000 FITS dates are DD/MM/YY in the 1900s; some writers wrote 2002 as 102.
        date = f"{1900 + year:04d}-{month:02d}-{day:02d}"
    clock = header.get("TIME-OBS") or header.get("UT")
    mjd = header.get("MJD-OBS")
    candidates: list[tuple[str | float, str]] = []
    if date and "T" not in date and isinstance(clock, str) and clock.strip():
        candidates.append((f"{date}T{clock.strip()}", "isot"))
    if date and "T" in date:
        candidates.append((date, "isot"))
    if isinstance(mjd, int | float) and not isinstance(mjd, bool):
        candidates.append((float(mjd), "mjd"))
    if date:
        candidates.append((date, "iso"))
    for value, time_format in candidates:
        try:
            return Time(value, format=time_format, scale="utc").to_datetime(timezone=UTC)
        except ValueError:
            continue
    return None


def exptime_s(header: fits.Header) -> float | None:
    """EXPTIME (or EXPOSURE) in seconds, when it is a finite number of at least 0."""
    value = header.get("EXPTIME", header.get("EXPOSURE"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def filter_name(header: fits.Header) -> str | None:
    """FILTER, trimmed to what the wire carries (`FILTER_MAX_CHARS`)."""
    value = header.get("FILTER")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:FILTER_MAX_CHARS].strip()


def saturation_adu(header: fits.Header) -> float | None:
    """SATURATE from the header, else the largest value an integer BITPIX can hold."""
    value = header.get("SATURATE")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    bitpix = int(header.get("ZBITPIX", header.get("BITPIX", -32)))
    if bitpix < 0:
        return None
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    largest_raw = 255 if bitpix == 8 else 2 ** (bitpix - 1) - 1
    return bzero + bscale * largest_raw

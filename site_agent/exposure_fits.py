"""A follow-up exposure as a FITS frame: the header the pipeline needs (when, how long, which
filter, which request, and a TAN WCS at where the mount pointed) and the file, renamed into the
intake folder in one step so the agent never reads half of it."""

import os
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from protos import FollowUpRequest
from site_agent.followups import FOLLOWUP_KEYWORD

UINT16_MAX = 65535
"""Pixels within 0..65535 are stored as 16-bit (BZERO 32768), as cameras write them."""


def exposure_header(
    request: FollowUpRequest,
    ra_deg: float,
    dec_deg: float,
    pixel_scale_arcsec: float,
    shape: tuple[int, ...],
    started: datetime,
) -> fits.Header:
    """The header the pipeline needs: when, how long, which filter, which request, and a TAN
    WCS centred on where the mount pointed (north up, east left)."""
    height, width = shape
    scale_deg = pixel_scale_arcsec / 3600.0
    start = Time(started, scale="utc")
    header = fits.Header()
    cards: list[tuple[str, object, str]] = [
        ("IMAGETYP", "LIGHT", "Type of exposure"),
        ("OBJECT", request.target.name[:68], "Target"),
        ("DATE-OBS", start.isot, "[UTC] Start of exposure"),
        ("TIMESYS", "UTC", "Time scale of DATE-OBS"),
        ("MJD-OBS", round(float(start.mjd), 8), "[d] Modified Julian Date of start"),
        ("EXPTIME", request.plan.exptime_s, "[s] Exposure time"),
        ("FILTER", request.plan.filter, "Filter"),
        (FOLLOWUP_KEYWORD, request.request_id, "follow-up request observed"),
        ("PIXSCALE", pixel_scale_arcsec, "[arcsec/px] Pixel scale"),
        ("WCSAXES", 2, "Number of WCS axes"),
        ("CTYPE1", "RA---TAN", "Gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "Gnomonic projection"),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("RADESYS", "ICRS", ""),
        ("CRVAL1", ra_deg % 360.0, "[deg] RA the mount reported"),
        ("CRVAL2", dec_deg, "[deg] Dec the mount reported"),
        ("CRPIX1", (width + 1) / 2.0, "Frame centre"),
        ("CRPIX2", (height + 1) / 2.0, "Frame centre"),
        ("CD1_1", -scale_deg, "[deg/px]"),
        ("CD1_2", 0.0, "[deg/px]"),
        ("CD2_1", 0.0, "[deg/px]"),
        ("CD2_2", scale_deg, "[deg/px]"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment)
    return header


def write_exposure(path: Path, pixels: np.ndarray, header: fits.Header) -> Path:
    """Write the frame under a hidden name, then rename it to `path`; returns `path`."""
    in_range = pixels.min() >= 0 and pixels.max() <= UINT16_MAX
    data = pixels.astype(np.uint16) if in_range else pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    fits.PrimaryHDU(data=data, header=header).writeto(partial, overwrite=True)
    os.replace(partial, path)
    return path

"""The stars of a field: positions on the sky and magnitudes with realistic number counts.

Star counts follow a power law, N(< m) = N20 * 10**(slope * (m - 20)), with slope 0.30 (the
observed 0.3-0.4 per magnitude at intermediate galactic latitude flattens at faint magnitudes).
N20, the stars per square degree brighter than 20th magnitude, follows the galactic latitude b
of the field: 1500 / sin|b|, so 1500 at the pole, 3000 at b = 30 deg and 10000 (the cap, at
|b| < 8.6 deg) towards the plane. Stars are drawn uniformly
over the frame plus a margin, so stars just outside still spill light in and a slightly shifted
frame of the same field sees the same sky.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

POLE_STARS_PER_DEG2 = 1500.0
"""Stars per square degree brighter than 20th magnitude towards a galactic pole."""
MIN_SIN_LATITUDE = 0.15
"""Densities stop rising below |b| = 8.6 deg, where dust hides the stars behind."""


@dataclass(frozen=True)
class SkySources:
    """Sources of one field: ICRS positions in degrees and magnitudes in the camera's filter."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    mag: np.ndarray

    def __len__(self) -> int:
        return len(self.mag)

    def pixel_positions(self, wcs: WCS) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) pixel positions of the sources (their centres) in a frame with this
        WCS."""
        x, y = wcs.all_world2pix(self.ra_deg, self.dec_deg, 0)
        return np.asarray(x), np.asarray(y)


@dataclass(frozen=True)
class StarCatalogue(SkySources):
    """Stars of one field."""


def stars_per_deg2_brighter_than_20(ra_deg: float, dec_deg: float) -> float:
    """Star density N20 of a field, from its galactic latitude."""
    latitude = SkyCoord(ra_deg, dec_deg, unit="deg").galactic.b.rad
    return POLE_STARS_PER_DEG2 / max(abs(float(np.sin(latitude))), MIN_SIN_LATITUDE)


def draw_magnitudes(
    rng: np.random.Generator, count: int, bright_mag: float, faint_mag: float, slope: float
) -> np.ndarray:
    """`count` magnitudes with dN/dm proportional to 10**(slope * m) between the two limits."""
    low, high = 10.0 ** (slope * bright_mag), 10.0 ** (slope * faint_mag)
    return np.log10(low + rng.random(count) * (high - low)) / slope


def scatter_sources(
    rng: np.random.Generator,
    wcs: WCS,
    brighter_than_per_deg2: Callable[[float], float],
    *,
    faint_mag: float,
    bright_mag: float,
    slope_per_mag: float,
    margin_px: int,
) -> SkySources:
    """Sources uniformly over the frame of `wcs` (plus `margin_px` around it), as many as the
    counts N(< m) per square degree give between the two magnitudes (power law of
    `slope_per_mag`)."""
    if faint_mag <= bright_mag:
        raise ValueError(f"faint_mag {faint_mag} must be fainter than bright_mag {bright_mag}")
    width, height = wcs.pixel_shape
    scale_deg = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))))
    area_deg2 = (width + 2 * margin_px) * (height + 2 * margin_px) * scale_deg**2
    expected = brighter_than_per_deg2(faint_mag) - brighter_than_per_deg2(bright_mag)
    count = int(rng.poisson(area_deg2 * expected))
    x = rng.uniform(-margin_px, width + margin_px, count)
    y = rng.uniform(-margin_px, height + margin_px, count)
    ra, dec = wcs.all_pix2world(x, y, 0)
    mag = draw_magnitudes(rng, count, bright_mag, faint_mag, slope_per_mag)
    return SkySources(ra_deg=np.asarray(ra) % 360.0, dec_deg=np.asarray(dec), mag=mag)


def draw_star_catalogue(
    rng: np.random.Generator,
    wcs: WCS,
    *,
    faint_mag: float,
    bright_mag: float = 10.0,
    slope_per_mag: float = 0.30,
    margin_px: int = 32,
) -> StarCatalogue:
    """Stars over the frame of `wcs` (plus `margin_px` around it) down to `faint_mag`."""
    density_20 = stars_per_deg2_brighter_than_20(*(float(v) for v in wcs.wcs.crval))

    def brighter_than(mag: float) -> float:
        return density_20 * 10.0 ** (slope_per_mag * (mag - 20.0))

    sources = scatter_sources(
        rng,
        wcs,
        brighter_than,
        faint_mag=faint_mag,
        bright_mag=bright_mag,
        slope_per_mag=slope_per_mag,
        margin_px=margin_px,
    )
    return StarCatalogue(ra_deg=sources.ra_deg, dec_deg=sources.dec_deg, mag=sources.mag)

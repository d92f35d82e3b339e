"""The galaxies of a field: positions, magnitudes and shapes with realistic counts and sizes,
and their light laid out on the detector before the PSF blurs it.

Counts follow the observed optical galaxy number counts, log10 N(< m) = 3.0 + 0.45 (m - 20) per
square degree: ~1000 brighter than 20th magnitude, ~8000 than 22nd, ~60000 than 24th (r band,
as deep surveys count them), the same everywhere on the sky (extinction by the Milky Way is
left out). Sizes shrink with magnitude: the half-light radius (along the major axis) has a median
of 10**(0.2 - 0.1 (m - 20)) arcsec, 1.6" at 20th magnitude and 1.0" at 22nd, with 0.2 dex of
scatter. Seven in ten are discs (Sersic index 1, axis ratio 0.25-1), the rest spheroids (index 4,
axis ratio 0.6-1), at random position angles. Galaxies are drawn over the frame plus a margin
down to a magnitude the caller chooses (a galaxy much fainter than the sky noise only adds to
the background); like the stars, a catalogue is drawn once per field, so every frame of that
field sees the same galaxies.
"""

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from training.simulator.placement import add_stamp, splat_bilinear
from training.simulator.starfield import SkySources, scatter_sources

BRIGHTER_THAN_20_PER_DEG2 = 1000.0
"""Galaxies per square degree brighter than 20th magnitude."""
COUNT_SLOPE_PER_MAG = 0.45
"""d log10 N / dm of the galaxy counts."""
DISC_FRACTION = 0.7
SUBSAMPLE = 3
"""Each pixel of a galaxy's profile is the mean of SUBSAMPLE x SUBSAMPLE points."""
POINT_LIKE_RADIUS_PX = 0.5
"""Galaxies with a smaller half-light radius are laid down as points (the PSF hides the rest)."""
PROFILE_RADII = 4.0
"""Profiles are drawn out to this many half-light radii (major axis)."""
MAX_STAMP_HALF_PX = 64
STAMP_BATCH = 256
"""Profiles computed at once (bounds the memory of one batch to ~100 MB for the largest)."""


@dataclass(frozen=True)
class GalaxyCatalogue(SkySources):
    """Galaxies of one field: positions and magnitudes, and shapes (half-light radius along the
    major axis in arcsec, Sersic index, axis ratio b/a, position angle of the major axis in
    degrees from the frame's +x axis towards +y)."""

    half_light_arcsec: np.ndarray
    sersic_index: np.ndarray
    axis_ratio: np.ndarray
    position_angle_deg: np.ndarray


def galaxies_per_deg2_brighter_than(mag: float) -> float:
    """The galaxy number counts N(< mag) per square degree."""
    return BRIGHTER_THAN_20_PER_DEG2 * 10.0 ** (COUNT_SLOPE_PER_MAG * (mag - 20.0))


def median_half_light_arcsec(mag: np.ndarray) -> np.ndarray:
    """Median half-light radius (arcsec) of galaxies of magnitude `mag`."""
    return 10.0 ** (0.2 - 0.1 * (np.asarray(mag) - 20.0))


def draw_galaxy_catalogue(
    rng: np.random.Generator,
    wcs: WCS,
    *,
    faint_mag: float,
    bright_mag: float = 15.0,
    margin_px: int = 32,
) -> GalaxyCatalogue:
    """Galaxies over the frame of `wcs` (plus `margin_px` around it) down to `faint_mag`."""
    sources = scatter_sources(
        rng,
        wcs,
        galaxies_per_deg2_brighter_than,
        faint_mag=faint_mag,
        bright_mag=bright_mag,
        slope_per_mag=COUNT_SLOPE_PER_MAG,
        margin_px=margin_px,
    )
    count, mag = len(sources), sources.mag
    disc = rng.random(count) < DISC_FRACTION
    return GalaxyCatalogue(
        ra_deg=sources.ra_deg,
        dec_deg=sources.dec_deg,
        mag=mag,
        half_light_arcsec=median_half_light_arcsec(mag) * 10.0 ** rng.normal(0.0, 0.2, count),
        sersic_index=np.where(disc, 1.0, 4.0),
        axis_ratio=np.where(disc, rng.uniform(0.25, 1.0, count), rng.uniform(0.6, 1.0, count)),
        position_angle_deg=rng.uniform(0.0, 180.0, count),
    )


def sersic_b(index: np.ndarray) -> np.ndarray:
    """b_n of the Sersic profile exp(-b_n ((r / r_e)^(1/n) - 1)), so r_e encloses half the light
    (Ciotti & Bertin 1999 expansion)."""
    return 2.0 * index - 1.0 / 3.0 + 4.0 / (405.0 * index) + 46.0 / (25515.0 * index**2)


def stamp_half_width(half_light_px: np.ndarray) -> np.ndarray:
    """Half the side of the square stamps (pixels) that hold profiles of these radii."""
    reach = np.ceil(PROFILE_RADII * np.asarray(half_light_px))
    return np.clip(reach, 2, MAX_STAMP_HALF_PX).astype(int)


def sersic_stamps(
    offset_x: np.ndarray,
    offset_y: np.ndarray,
    half_light_px: np.ndarray,
    index: np.ndarray,
    axis_ratio: np.ndarray,
    angle_deg: np.ndarray,
    half: int,
) -> np.ndarray:
    """Galaxies' light on square stamps of side `2 half + 1` `[G, side, side]`, each centred on
    the pixel nearest its galaxy's centre (the centre `offset_x`, `offset_y` pixels from that
    pixel's middle) and summing to one."""
    steps = (np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5
    grid = (np.arange(-half, half + 1)[:, None] + steps[None, :]).ravel().astype(np.float32)

    def per_galaxy(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32)[:, None, None]

    dy = grid[None, :, None] - per_galaxy(offset_y)
    dx = grid[None, None, :] - per_galaxy(offset_x)
    angle = np.deg2rad(per_galaxy(angle_deg))
    major = dx * np.cos(angle) + dy * np.sin(angle)
    minor = -dx * np.sin(angle) + dy * np.cos(angle)
    radius = np.hypot(major, minor / per_galaxy(axis_ratio)) / per_galaxy(half_light_px)
    n = per_galaxy(index)
    light = np.exp(-sersic_b(n) * (np.where(n == 1.0, radius, radius ** (1.0 / n)) - 1.0))
    light[radius > PROFILE_RADII] = 0.0
    side = 2 * half + 1
    pixels = light.reshape(len(light), side, SUBSAMPLE, side, SUBSAMPLE).mean(axis=(2, 4))
    return pixels / pixels.sum(axis=(1, 2), keepdims=True)


def render_galaxy_light(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    electrons: np.ndarray,
    galaxies: GalaxyCatalogue,
    pixel_scale_arcsec: float,
) -> np.ndarray:
    """Expected electrons of the galaxies at 0-based pixel positions (x, y) before the PSF,
    float32: each galaxy's profile, or a point for those too small to be resolved. Profiles
    are computed in batches of galaxies that share a stamp size."""
    image = np.zeros(shape, dtype=np.float32)
    radius_px = galaxies.half_light_arcsec / pixel_scale_arcsec
    point_like = radius_px < POINT_LIKE_RADIUS_PX
    splat_bilinear(image, x[point_like], y[point_like], electrons[point_like])
    height, width = shape
    column, row = np.rint(x).astype(int), np.rint(y).astype(int)
    halves = stamp_half_width(radius_px)
    reaches = (column + halves >= 0) & (column - halves < width)
    reaches &= (row + halves >= 0) & (row - halves < height)
    drawn = np.flatnonzero(~point_like & reaches)
    for half in np.unique(halves[drawn]):
        same_size = drawn[halves[drawn] == half]
        for batch in np.array_split(same_size, -(-len(same_size) // STAMP_BATCH)):
            stamps = (
                sersic_stamps(
                    x[batch] - column[batch],
                    y[batch] - row[batch],
                    radius_px[batch],
                    galaxies.sersic_index[batch],
                    galaxies.axis_ratio[batch],
                    galaxies.position_angle_deg[batch],
                    int(half),
                )
                * electrons[batch, None, None]
            )
            for stamp, galaxy in zip(stamps.astype(np.float32), batch, strict=True):
                add_stamp(image, stamp, int(row[galaxy]), int(column[galaxy]))
    return image

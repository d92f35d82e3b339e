"""Starlight of catalogue stars in a frame: aperture photometry against their expected light.

`starlight_transparency` measures the brightest usable stars of a field catalogue in a raw frame
and compares each with the electrons it should have given under a clear sky:
- a star is usable when its aperture lies in the frame, it is expected to give at least
  `MIN_EXPECTED_E` electrons, it peaks below `LINEARITY_FRACTION` of saturation, and no
  catalogue neighbour brighter than `NEIGHBOUR_DELTA_MAG` fainter falls in its aperture;
- the aperture comes from the curve of growth of the brightest usable stars out to the widest
  radius the frame allows (`APERTURE_RADII_PX`): the radius beyond which they add no
  significant light (under a bright sky wide apertures are mostly noise), then the smallest
  radius holding `COMPLETE_FRACTION` of it on the median star's curve; each flux is divided by
  that share, so bad seeing, trailed stars and donuts are measured whole;
- the sky of each star is the median of an annulus beyond its aperture (a neighbour in the
  annulus hardly moves a median; sep's `sum_circle` averages its annulus instead);
- the transparency is the median of the stars' ratios weighted by their inverse variance
  (photon and sky noise plus `STAR_SYSTEMATIC`), its error the larger of what the noise and the
  stars' scatter allow; clouds that vary over the frame give their median transmission.

Pure numpy on small stamps: a few milliseconds for a hundred stars.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from imaging.catalogue import ReferenceCatalogue
from imaging.gaussian import MAD_TO_SIGMA

APERTURE_RADII_PX = np.array([2, 3, 4, 5, 6, 8, 10, 12, 15, 19, 24, 30, 36], dtype=float)
"""Radii of the curve of growth; the last one holds all the light of any star we grade."""
COMPLETE_FRACTION = 0.97
"""The photometry aperture is the smallest that holds this share of the largest one's light."""
ANNULUS_GAP_PX = 3
ANNULUS_WIDTH_PX = 8
MIN_GROWTH_RADIUS_PX = 12.0
"""The narrowest outer radius of a curve of growth: it holds all the light of stars trailed or
defocused up to the bad limits at 0.6 arcsec/px."""
STAR_SYSTEMATIC = 0.05
"""Relative error of one star's ratio beyond its noise (catalogue error, flat field, a faint
neighbour): no single bright star outweighs many others."""
MEDIAN_EFFICIENCY = 1.2533
"""Error of a median over that of a mean, for normal errors."""
SIGNIFICANT_SIGMA = 2.0
"""Light a wider aperture adds counts when it exceeds this many sigma of the added sky noise."""
GROWTH_STARS = 12
"""Brightest usable stars whose curve of growth sets the aperture and its correction."""
MAX_STARS = 100
MIN_STARS = 3
MIN_EXPECTED_E = 1000.0
"""Fainter catalogue stars are too noisy to weigh the starlight of a clear sky."""
NEIGHBOUR_DELTA_MAG = 2.5
"""A catalogue neighbour less than this much fainter (10 % of the light) spoils a star."""
FAR_AWAY_PX = -1e9
"""Where a star the WCS cannot place goes in the k-d tree (which takes finite positions only):
no aperture of the frame reaches it."""
LINEARITY_FRACTION = 0.8
"""Stars peaking above this share of the saturation level are not measured."""


@dataclass(frozen=True)
class Starlight:
    """Measured / expected starlight of catalogue stars, its 1-sigma error, and the stars."""

    transparency: float
    error: float
    stars: int


def starlight_transparency(
    data: np.ndarray,
    catalogue: ReferenceCatalogue,
    wcs: WCS,
    *,
    expected_e: np.ndarray,
    gain_e_per_adu: float,
    saturation_adu: float,
) -> Starlight | None:
    """Measured / expected starlight of the brightest usable catalogue stars in the frame: the
    median of the stars' ratios weighted by their inverse variance, its error (from the stars'
    noise or, if larger, from their scatter) and how many stars; None when fewer than
    `MIN_STARS` are measurable."""
    x, y = catalogue.pixel_positions(wcs)
    order = np.argsort(catalogue.mag)
    x, y, mag, expected_e = x[order], y[order], catalogue.mag[order], expected_e[order]
    positions = np.nan_to_num(np.column_stack([x, y]), nan=FAR_AWAY_PX, posinf=FAR_AWAY_PX)
    stars = _Stars(x, y, mag, expected_e, cKDTree(positions))
    growth = _curve_of_growth(data, stars, saturation_adu=saturation_adu)
    if growth is None:
        return None
    radius, enclosed = growth
    chosen, flux_e, sky_variance_e = [], [], []
    for index in _usable_stars(data.shape, stars, radius):
        measured = _aperture_sums(data, x[index], y[index], np.array([radius]), saturation_adu)
        if measured is None:
            continue
        chosen.append(index)
        flux_e.append(measured[0][0] * gain_e_per_adu / enclosed)
        sky_variance_e.append(measured[2][0] * measured[1] * gain_e_per_adu**2)
        if len(chosen) == MAX_STARS:
            break
    if len(chosen) < MIN_STARS:
        return None
    expected = expected_e[chosen]
    ratios = np.asarray(flux_e) / expected
    # Weights from the expected light at the unweighted estimate, never from the measured
    # flux itself (that would favour stars that happened to come out faint).
    first_guess = max(float(np.median(ratios)), 0.01)
    variance = first_guess * expected + np.asarray(sky_variance_e)
    ratio_variance = variance / expected**2 + (STAR_SYSTEMATIC * first_guess) ** 2
    estimate = weighted_median(ratios, 1.0 / ratio_variance)
    from_noise = 1.0 / np.sqrt(np.sum(1.0 / ratio_variance))
    from_scatter = MAD_TO_SIGMA * float(np.median(np.abs(ratios - estimate))) / np.sqrt(len(ratios))
    error = MEDIAN_EFFICIENCY * max(from_noise, from_scatter)
    return Starlight(transparency=estimate, error=error, stars=len(chosen))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half of the total weight lies."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


@dataclass(frozen=True)
class _Stars:
    """The catalogue's stars in the frame's pixels, brightest first, with a k-d tree of their
    positions (finding each star's neighbours is then logarithmic, not a pass over all)."""

    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    expected_e: np.ndarray
    tree: cKDTree


def _curve_of_growth(
    data: np.ndarray, stars: _Stars, *, saturation_adu: float
) -> tuple[float, float] | None:
    """(aperture radius, share of the light it holds) from the summed light of the brightest
    isolated stars, out to the largest radius at which the frame holds enough of them (a
    small frame has few stars far enough from its edges for the widest apertures)."""
    room = min(data.shape) / 2.0 - 1.0
    for outermost in APERTURE_RADII_PX[room >= APERTURE_RADII_PX][::-1]:
        if outermost < MIN_GROWTH_RADIUS_PX:
            return None
        radii = APERTURE_RADII_PX[outermost >= APERTURE_RADII_PX]
        sums, variances = [], []
        for index in _usable_stars(data.shape, stars, outermost):
            measured = _aperture_sums(data, stars.x[index], stars.y[index], radii, saturation_adu)
            if measured is not None:
                sums.append(measured[0])
                variances.append(measured[2] * measured[1])
            if len(sums) == GROWTH_STARS:
                break
        if len(sums) >= MIN_STARS:
            return _complete_aperture(radii, np.array(sums), np.array(variances))
    return None


def _complete_aperture(
    radii: np.ndarray, sums: np.ndarray, variances: np.ndarray
) -> tuple[float, float] | None:
    """From the curves of growth of a few stars (sums [star, radius] and their sky variance):
    the radius beyond which the stars together add no significant light (wide apertures under
    a bright sky are mostly noise), the smallest radius holding `COMPLETE_FRACTION` of the
    light within it on the median star's curve (one star with a neighbour must not decide),
    and that share."""
    total, variance = sums.sum(axis=0), variances.sum(axis=0)
    outer = len(radii) - 1
    for index in range(len(radii) - 1):
        added = total[index + 1 :] - total[index]
        noise = np.sqrt(np.maximum(variance[index + 1 :] - variance[index], 0.0))
        if np.all(added <= SIGNIFICANT_SIGMA * noise + (1 - COMPLETE_FRACTION) * total[index]):
            outer = index
            break
    lit = sums[:, outer] > 0
    if not lit.any():
        return None
    growth = np.median(sums[lit, : outer + 1] / sums[lit, outer : outer + 1], axis=0)
    at = int(np.flatnonzero(growth >= COMPLETE_FRACTION)[0])
    return float(radii[at]), float(growth[at])


def _usable_stars(shape: tuple[int, ...], stars: _Stars, radius: float) -> Iterator[int]:
    """Indices (brightest first) of stars whose aperture lies in the frame, bright enough to
    measure and without a catalogue neighbour that would add light to the aperture (the sky
    annulus takes a median, which a neighbour hardly moves)."""
    reach = radius + ANNULUS_GAP_PX
    height, width = shape
    x, y, mag = stars.x, stars.y, stars.mag
    inside = (x >= radius) & (x <= width - 1 - radius) & (y >= radius) & (y <= height - 1 - radius)
    for index in np.flatnonzero(inside & (stars.expected_e >= MIN_EXPECTED_E)):
        near = np.asarray(stars.tree.query_ball_point((x[index], y[index]), reach), dtype=int)
        close = np.hypot(x[near] - x[index], y[near] - y[index]) < reach
        if np.count_nonzero(close & (mag[near] < mag[index] + NEIGHBOUR_DELTA_MAG)) == 1:
            yield int(index)  # itself only


def _aperture_sums(
    data: np.ndarray, x: float, y: float, radii: np.ndarray, saturation_adu: float
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Sky-subtracted sums (ADU) within each radius of (x, y), the sky's variance per pixel
    (ADU²) and the pixels in each aperture; None for a saturated star or no sky around it.
    The sky annulus may run off the frame; the apertures may not."""
    reach = math.ceil(radii[-1]) + ANNULUS_GAP_PX + ANNULUS_WIDTH_PX
    col, row = round(x), round(y)
    top, left = max(row - reach, 0), max(col - reach, 0)
    stamp = data[top : row + reach + 1, left : col + reach + 1].astype(np.float64)
    if not np.nanmax(stamp) < LINEARITY_FRACTION * saturation_adu:
        return None
    rows = np.arange(top, top + stamp.shape[0], dtype=float)[:, None]
    cols = np.arange(left, left + stamp.shape[1], dtype=float)[None, :]
    distance = np.hypot(cols - x, rows - y)
    outer = radii[-1] + ANNULUS_GAP_PX
    sky = stamp[(distance >= outer) & (distance < outer + ANNULUS_WIDTH_PX)]
    sky = sky[np.isfinite(sky)]
    if len(sky) < 20:
        return None
    level = float(np.median(sky))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(sky - level)))
    signal = np.nan_to_num(stamp - level)
    inside = [distance <= r for r in radii]
    sums = np.array([signal[mask].sum() for mask in inside])
    return sums, spread**2, np.array([np.count_nonzero(mask) for mask in inside])

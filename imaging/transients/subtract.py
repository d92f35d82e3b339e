"""Subtraction: the PSF-matched difference image and its per-pixel noise, in new-frame flux units.

When the reference was convolved (the usual case: a sharp, deep reference), the difference is
`new - K*ref - background`; when the new frame was the sharper one it is convolved instead and
the difference `(K*new + background - ref) / sum(K)`; what smooth background is left (a trail's
halo, a sky gradient) is then removed with sep. Fluxes on the difference are always
those of the new frame. The noise map combines both images' sky noise (the convolved one
through `sum(K^2)`), the photon noise of the stars and the fraction of their light the kernel
cannot match (fitted on the kernel stamps; the light is the reference's at the difference's PSF,
above 3 sigma, never the new frame's, which holds the transients), and is then rescaled so that
PSF-filtered empty sky has the scatter white noise would have: the S/N of a point source on the
difference is right even though convolution and resampling correlate its noise. The same check
is then made on the lit pixels, by level of light, for stars and for the rest apart
(`_rescale_by_light`), so that S/N is right on a galaxy and beside a star too.
"""

from dataclasses import dataclass

import numpy as np
import sep
from scipy import ndimage
from scipy.spatial import cKDTree

from imaging.gaussian import FWHM_PER_SIGMA
from imaging.transients.psf_match import KernelSolution, convolve

NOISE_CROP_PX = 1024
VARIANCE_BLOCK_ROWS = 256
"""Rows of the stars' variance computed at a time (4 MB temporaries on a 4096-wide frame)."""
LIGHT_BINS = 6
LIGHT_BIN_MIN_PIXELS = 300
STAR_RADIUS_FWHM = 2.0
"""Pixels this many FWHM from a reference point source count as the star's."""
LIGHT_FACTOR_RANGE = (0.5, 20.0)
"""How far the noise of lit pixels may be rescaled from the model's (a sanity bound)."""
LIGHT_BIN_MAX_ONE_SOURCE = 0.5
"""A light bin with more of its pixels on one source (one connected patch of lit pixels) measures
that source, and a transient on it, not a level of light: it is not used. In a 256² DECam exposure
72 % of the brightest galaxy bin was the supernova's host: its factor came out 3.8 and the
supernova's S/N 5.3 (14.0 without that bin; 16.5-17.4 in the visit's other exposures)."""
LIGHT_SIGMA = 3.0
"""The light model counts as star light only above this many times its own pixel noise: below
it is mostly the reference's noise, whose positive half would raise the noise map at random."""


@dataclass(frozen=True)
class DifferenceImage:
    """A difference image, its 1-sigma noise, its PSF width and the pixels not to trust."""

    data: np.ndarray
    noise: np.ndarray
    bad: np.ndarray
    psf_fwhm_px: float
    noise_rescale: float


def difference_image(
    new: np.ndarray,
    new_noise: np.ndarray,
    reference: np.ndarray,
    reference_noise_adu: float,
    solution: KernelSolution,
    bad: np.ndarray,
    psf_fwhm_px: float,
    star_xy: np.ndarray,
) -> DifferenceImage:
    """Subtract the aligned reference from the new frame with a fitted kernel.

    `new` and `reference` are sky-subtracted and on one pixel grid; `bad` marks pixels to
    ignore (outside the reference, saturated, masked), which are set to zero in the output;
    `star_xy` (n, 2) are the reference's point sources on that grid, whose light a kernel
    matches less well than a galaxy's (`_rescale_by_light`).
    """
    kernel = solution.kernel
    kernel_power = float(np.sum(kernel.astype(np.float64) ** 2))
    if np.any(reference[bad]):
        reference = np.where(bad, np.float32(0.0), reference)
    # In place where it can be: each full-frame float32 temporary of a 4096² frame is 64 MB.
    if solution.convolved == "reference":
        scale = 1.0
        light = convolve(reference, kernel)  # the stars' light at the difference's PSF
        variance = np.square(new_noise)
        variance += np.float32(kernel_power * reference_noise_adu**2)
        floor = LIGHT_SIGMA * np.sqrt(kernel_power) * reference_noise_adu
        _add_source_variance(variance, light, solution, scale, floor)
        lit = _LitPixels.of(light, floor, scale, star_xy, psf_fwhm_px)
        data = np.subtract(new, light, out=light)  # the light's buffer becomes the difference
        data -= np.float32(solution.background_adu)
    else:
        scale = solution.photometric_scale
        variance = np.square(new_noise)
        variance *= np.float32(kernel_power)
        variance += np.float32(reference_noise_adu**2)
        variance /= np.float32(scale**2)
        # The reference already has the difference's PSF. The convolved new frame must not be
        # the light model: it holds the transients and the new frame's noise, whose positive
        # half would raise the noise of every transient (by ~2x at S/N 5) and of empty sky.
        floor = LIGHT_SIGMA * reference_noise_adu
        _add_source_variance(variance, reference, solution, scale, floor)
        lit = _LitPixels.of(reference, floor, scale, star_xy, psf_fwhm_px)
        data = convolve(new, kernel, zero_where=bad)
        data += np.float32(solution.background_adu)
        data -= reference
        data /= np.float32(scale)
    noise = np.sqrt(variance, out=variance)
    data[bad] = 0.0
    data -= sep.Background(data, mask=bad, bw=64, bh=64).back(dtype=np.float32)
    data[bad] = 0.0
    crop = _CentralCrop.of(data.shape)
    scatter = crop.filtered_scatter(data, noise, bad, psf_fwhm_px)
    rescale = _sky_rescale(scatter)
    noise *= np.float32(rescale)
    if scatter is not None:  # what it would be with the rescaled map
        scatter /= np.float32(rescale)
    _rescale_by_light(noise, lit, crop, scatter)
    return DifferenceImage(
        data=data.astype(np.float32, copy=False),
        noise=noise,
        bad=bad,
        psf_fwhm_px=psf_fwhm_px,
        noise_rescale=rescale,
    )


def _add_source_variance(
    variance: np.ndarray,
    light: np.ndarray,
    solution: KernelSolution,
    scale: float,
    floor: float,
) -> None:
    """Add to `variance` the photon noise of the stars' light (`light`, at the difference's PSF
    in reference units, divided by `scale` into new-frame units; only where it exceeds `floor`)
    and the part of it one kernel cannot match, a block of rows at a time: no full-frame
    temporaries."""
    photon_per_adu = np.float32(solution.source_noise_per_adu / scale)
    mismatch = np.float32(solution.mismatch_fraction)
    for top in range(0, light.shape[0], VARIANCE_BLOCK_ROWS):
        rows = slice(top, top + VARIANCE_BLOCK_ROWS)
        block = np.where(light[rows] > np.float32(floor), light[rows], np.float32(0.0))
        block /= np.float32(scale)
        variance[rows] += block * photon_per_adu
        block *= mismatch
        np.square(block, out=block)
        variance[rows] += block


@dataclass(frozen=True)
class _LitPixels:
    """Where the light model adds source noise: flat indices, light in new-frame units, and
    whether each pixel lies on a point source (within `STAR_RADIUS_FWHM` of one)."""

    index: np.ndarray
    light: np.ndarray
    on_star: np.ndarray

    @classmethod
    def of(
        cls,
        light: np.ndarray,
        floor: float,
        scale: float,
        star_xy: np.ndarray,
        psf_fwhm_px: float,
    ) -> "_LitPixels":
        flat = light.ravel()
        index = np.flatnonzero(flat > np.float32(floor))
        rows, columns = np.divmod(index, light.shape[1])
        on_star = np.zeros(len(index), dtype=bool)
        if len(star_xy):
            distance, _ = cKDTree(star_xy).query(
                np.column_stack([columns, rows]),
                distance_upper_bound=STAR_RADIUS_FWHM * psf_fwhm_px,
            )
            on_star = np.isfinite(distance)
        return cls(index, flat[index] / np.float32(scale), on_star)


@dataclass(frozen=True)
class _CentralCrop:
    """The central `NOISE_CROP_PX` square where the noise map is checked against the data."""

    top: int
    left: int
    height: int
    width: int

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> "_CentralCrop":
        height, width = min(shape[0], NOISE_CROP_PX), min(shape[1], NOISE_CROP_PX)
        return cls((shape[0] - height) // 2, (shape[1] - width) // 2, height, width)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def filtered_scatter(
        self, data: np.ndarray, noise: np.ndarray, bad: np.ndarray, psf_fwhm_px: float
    ) -> np.ndarray | None:
        """The crop's difference over its noise, filtered with the PSF (a Gaussian) and divided
        by the scatter that filter gives white unit noise, at every pixel with a full PSF's
        footprint of good pixels (NaN elsewhere); None when too few are good. Where the noise
        map is right, these values have unit scatter."""
        crop = self.slices
        good = ~bad[crop]
        if good.sum() < 1000:
            return None
        normalised = np.where(good, data[crop] / noise[crop], 0.0).astype(np.float32)
        sigma = psf_fwhm_px / FWHM_PER_SIGMA
        filtered = ndimage.gaussian_filter(normalised, sigma, truncate=3.0)
        coverage = ndimage.gaussian_filter(good.astype(np.float32), sigma, truncate=3.0)
        filtered /= np.maximum(coverage, 1e-3)
        filtered *= np.float32(np.sqrt(4.0 * np.pi * sigma**2))  # white noise -> unit scatter
        filtered[~_eroded(good, int(np.ceil(3.0 * sigma)))] = np.nan
        return filtered


def _sky_rescale(scatter: np.ndarray | None) -> float:
    """How much the noise map underestimates point-source noise on this difference.

    Convolution with the kernel and resampling correlate the noise, so PSF-filtered noise is
    larger than white noise of the map's level would give; the ratio (robust, from the 16th and
    84th percentiles) rescales the map so that point-source S/N is right.
    """
    values = scatter[np.isfinite(scatter)] if scatter is not None else np.zeros(0)
    if values.size < 100:
        return 1.0
    low, high = np.percentile(values, [15.87, 84.13])
    return float(max((high - low) / 2.0, 1e-3))


def _rescale_by_light(
    noise: np.ndarray, lit: _LitPixels, crop: _CentralCrop, scatter: np.ndarray | None
) -> None:
    """Make point-source S/N right on stars and galaxies too. The noise model of the kernel
    stamps describes a star's pixels one by one; a PSF-sized filter also sums the structure a
    kernel leaves on a star, and a galaxy's smooth light leaves less of it than a star's at the
    same level. So, for the pixels on stars and for the others apart, the lit pixels of the crop
    are split into `LIGHT_BINS` bins of equal count by light, each bin's filtered scatter is
    measured from its lower half (median minus 16th percentile: transients only add positive
    values), and the noise of every such pixel is multiplied by it, interpolated in light. A bin
    mostly on one source is left out (`LIGHT_BIN_MAX_ONE_SOURCE`)."""
    if scatter is None or lit.index.size == 0:
        return
    rows, columns = np.divmod(lit.index, noise.shape[1])
    rows -= crop.top
    columns -= crop.left
    inside = (rows >= 0) & (rows < crop.height) & (columns >= 0) & (columns < crop.width)
    values = np.full(len(lit.index), np.nan, dtype=np.float32)
    values[inside] = scatter[rows[inside], columns[inside]]
    patches = np.zeros((crop.height, crop.width), dtype=bool)
    patches[rows[inside], columns[inside]] = True
    labels, _ = ndimage.label(patches)
    source = np.zeros(len(lit.index), dtype=np.int64)
    source[inside] = labels[rows[inside], columns[inside]]
    flat = noise.reshape(-1)
    for group in (lit.on_star, ~lit.on_star):
        measured = group & np.isfinite(values)
        if measured.sum() < LIGHT_BINS * LIGHT_BIN_MIN_PIXELS:
            continue
        light = lit.light[measured]
        order = np.argsort(light)
        centres, factors = [], []
        for chunk in np.array_split(order, LIGHT_BINS):
            if np.bincount(source[measured][chunk]).max() > LIGHT_BIN_MAX_ONE_SOURCE * len(chunk):
                continue
            low, middle = np.percentile(values[measured][chunk], [15.87, 50.0])
            centres.append(float(np.median(light[chunk])))
            factors.append(float(np.clip(middle - low, *LIGHT_FACTOR_RANGE)))
        if not centres:
            continue
        factor = np.interp(lit.light[group], centres, factors).astype(np.float32)
        flat[lit.index[group]] *= factor


def _eroded(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Pixels of `mask` at least `radius_px` from any pixel outside it."""
    return ndimage.uniform_filter((~mask).astype(np.float32), size=2 * radius_px + 1) < 1e-6

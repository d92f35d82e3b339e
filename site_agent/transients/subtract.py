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
difference is right even though convolution and resampling correlate its noise.
"""

from dataclasses import dataclass

import numpy as np
import sep
from scipy import ndimage

from site_agent.transients.psf_match import KernelSolution, convolve

NOISE_CROP_PX = 1024
VARIANCE_BLOCK_ROWS = 256
"""Rows of the stars' variance computed at a time (4 MB temporaries on a 4096-wide frame)."""
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
) -> DifferenceImage:
    """Subtract the aligned reference from the new frame with a fitted kernel.

    `new` and `reference` are sky-subtracted and on one pixel grid; `bad` marks pixels to
    ignore (outside the reference, saturated, masked), which are set to zero in the output.
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
        _add_source_variance(
            variance, reference, solution, scale, LIGHT_SIGMA * reference_noise_adu
        )
        data = convolve(new, kernel, zero_where=bad)
        data += np.float32(solution.background_adu)
        data -= reference
        data /= np.float32(scale)
    noise = np.sqrt(variance, out=variance)
    data[bad] = 0.0
    data -= sep.Background(data, mask=bad, bw=64, bh=64).back(dtype=np.float32)
    data[bad] = 0.0
    rescale = _noise_rescale(data, noise, bad, psf_fwhm_px)
    noise *= np.float32(rescale)
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


def _noise_rescale(
    data: np.ndarray, noise: np.ndarray, bad: np.ndarray, psf_fwhm_px: float
) -> float:
    """How much the noise map underestimates point-source noise on this difference.

    The difference is filtered with the PSF (a Gaussian) after dividing by its noise map; for
    white noise that has scatter sqrt(sum g^2). Convolution with the kernel and resampling
    correlate the noise, so the measured scatter is larger; the ratio (robust, from the 16th
    and 84th percentiles of a central crop) rescales the map so that point-source S/N is right.
    """
    height, width = data.shape
    top, left = max(0, (height - NOISE_CROP_PX) // 2), max(0, (width - NOISE_CROP_PX) // 2)
    crop = (slice(top, top + NOISE_CROP_PX), slice(left, left + NOISE_CROP_PX))
    good = ~bad[crop]
    if good.sum() < 1000:
        return 1.0
    normalised = np.where(good, data[crop] / noise[crop], 0.0).astype(np.float32)
    sigma = psf_fwhm_px / 2.3548
    filtered = ndimage.gaussian_filter(normalised, sigma, truncate=3.0)
    coverage = ndimage.gaussian_filter(good.astype(np.float32), sigma, truncate=3.0)
    inner = _eroded(good, int(np.ceil(3.0 * sigma)))
    values = filtered[inner] / np.maximum(coverage[inner], 1e-3)
    if values.size < 100:
        return 1.0
    low, high = np.percentile(values, [15.87, 84.13])
    white = 1.0 / np.sqrt(4.0 * np.pi * sigma**2)
    return float(max((high - low) / 2.0 / white, 1e-3))


def _eroded(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Pixels of `mask` at least `radius_px` from any pixel outside it."""
    return ndimage.uniform_filter((~mask).astype(np.float32), size=2 * radius_px + 1) < 1e-6

"""Measuring candidates on the difference image: position, PSF flux and error, S/N, FWHM, shape,
how deep a negative lobe lies beside each (a dipole) and how far its brightest pixel stands above
the fitted PSF (a cosmic ray or hot pixel: sharper than anything seen through the atmosphere).

Flux is optimal (PSF-weighted) photometry with a Gaussian of the difference's FWHM at the
windowed centroid; its error comes from the noise map, so S/N is the difference's own.
"""

from dataclasses import dataclass

import numpy as np
import sep
from scipy import ndimage

from imaging.gaussian import FWHM_PER_SIGMA
from imaging.transients.sources import FWHM_PER_HALF_LIGHT_RADIUS
from imaging.transients.subtract import DifferenceImage

DIPOLE_RADIUS_FWHM = 1.5


@dataclass(frozen=True)
class Measurements:
    """Per-candidate measurements (arrays of one length, new-frame pixels 0-based)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    fwhm_px: np.ndarray
    ellipticity: np.ndarray
    dipole_ratio: np.ndarray
    """The most negative PSF-filtered S/N within `DIPOLE_RADIUS_FWHM` over the most positive:
    near -1 for the dipole a star leaves when it is slightly misplaced or mismatched, near 0
    for a point source that appeared."""
    peak_excess: np.ndarray
    """The brightest pixel within one pixel of the centre minus the fitted PSF's value there, in
    units of that pixel's noise: about 0 for a point source, large for a cosmic ray."""
    peak_over_psf: np.ndarray
    """That pixel over the fitted PSF's value there: about 1 for a point source."""

    @property
    def snr(self) -> np.ndarray:
        """Flux over its error."""
        return self.flux / self.flux_err

    def __len__(self) -> int:
        return len(self.x)

    def select(self, keep: np.ndarray) -> "Measurements":
        """The rows where `keep` is true (or the given indices)."""
        return Measurements(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def _gaussian_psf(dx: np.ndarray | float, dy: np.ndarray | float, sigma: float) -> np.ndarray:
    """A unit-flux Gaussian PSF of width `sigma` sampled at offsets (dx, dy) from its centre."""
    return np.exp(-(np.square(dx) + np.square(dy)) / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)


def psf_photometry(
    difference: DifferenceImage, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal flux and its 1-sigma error for point sources at (x, y)."""
    sigma = difference.psf_fwhm_px / FWHM_PER_SIGMA
    half = int(np.ceil(2.0 * difference.psf_fwhm_px))
    height, width = difference.data.shape
    flux = np.zeros(len(x))
    error = np.full(len(x), np.inf)
    for i, (xc, yc) in enumerate(zip(x, y, strict=True)):
        x0, y0 = round(xc), round(yc)
        lo_x, hi_x = max(x0 - half, 0), min(x0 + half + 1, width)
        lo_y, hi_y = max(y0 - half, 0), min(y0 + half + 1, height)
        if lo_x >= hi_x or lo_y >= hi_y:
            continue
        yy, xx = np.mgrid[lo_y:hi_y, lo_x:hi_x]
        profile = _gaussian_psf(xx - xc, yy - yc, sigma)
        usable = ~difference.bad[lo_y:hi_y, lo_x:hi_x]
        weight = usable / difference.noise[lo_y:hi_y, lo_x:hi_x].astype(np.float64) ** 2
        information = np.sum(profile**2 * weight)
        if information > 0:
            flux[i] = np.sum(profile * difference.data[lo_y:hi_y, lo_x:hi_x] * weight) / information
            error[i] = 1.0 / np.sqrt(information)
    return flux, error


def measure_candidates(difference: DifferenceImage, objects: np.ndarray) -> Measurements:
    """Positions, fluxes and shapes of the detections `objects` (sep structured array)."""
    if len(objects) == 0:
        return Measurements(*(np.zeros(0) for _ in Measurements.__dataclass_fields__))
    sigma = difference.psf_fwhm_px / FWHM_PER_SIGMA
    height, width = difference.data.shape
    start_x, start_y = objects["x"], objects["y"]
    outside = ~((start_x >= 0) & (start_x <= width - 1) & (start_y >= 0) & (start_y <= height - 1))
    start_x = np.where(outside, objects["xpeak"], start_x).astype(np.float64)
    start_y = np.where(outside, objects["ypeak"], start_y).astype(np.float64)
    x, y, _ = sep.winpos(
        difference.data,
        start_x,
        start_y,
        np.full(len(objects), sigma),
        mask=difference.bad,
    )
    moved = ~(np.hypot(x - start_x, y - start_y) <= difference.psf_fwhm_px)
    x, y = np.where(moved, start_x, x), np.where(moved, start_y, y)
    flux, error = psf_photometry(difference, x, y)
    half_light, _ = sep.flux_radius(
        difference.data,
        x,
        y,
        np.full(len(x), 3.0 * difference.psf_fwhm_px),
        0.5,
        mask=difference.bad,
        subpix=5,
    )
    ellipticity = 1.0 - objects["b"] / np.maximum(objects["a"], 1e-6)
    return Measurements(
        x=x,
        y=y,
        flux=flux,
        flux_err=error,
        fwhm_px=FWHM_PER_HALF_LIGHT_RADIUS * np.asarray(half_light),
        ellipticity=np.clip(ellipticity, 0.0, 1.0),
        dipole_ratio=dipole_ratios(difference, x, y),
        **_peak_above_psf(difference, x, y, flux),
    )


def _peak_above_psf(
    difference: DifferenceImage, x: np.ndarray, y: np.ndarray, flux: np.ndarray
) -> dict[str, np.ndarray]:
    """`Measurements.peak_excess` and `peak_over_psf` at (x, y), for PSF fluxes `flux`."""
    sigma = difference.psf_fwhm_px / FWHM_PER_SIGMA
    height, width = difference.data.shape
    excess, ratio = np.zeros(len(x)), np.ones(len(x))
    for i, (xc, yc) in enumerate(zip(x, y, strict=True)):
        x0, y0 = round(xc), round(yc)
        window = (
            slice(max(y0 - 1, 0), min(y0 + 2, height)),
            slice(max(x0 - 1, 0), min(x0 + 2, width)),
        )
        pixels = np.where(difference.bad[window], -np.inf, difference.data[window])
        if not np.isfinite(pixels).any():
            continue
        py, px = np.unravel_index(int(np.argmax(pixels)), pixels.shape)
        py, px = py + window[0].start, px + window[1].start
        model = flux[i] * float(_gaussian_psf(px - xc, py - yc, sigma))
        peak = float(difference.data[py, px])
        excess[i] = (peak - model) / float(difference.noise[py, px])
        ratio[i] = peak / model if model > 0 else np.inf
    return {"peak_excess": excess, "peak_over_psf": ratio}


def dipole_ratios(difference: DifferenceImage, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`Measurements.dipole_ratio` at (x, y): the difference over its noise is filtered with the
    PSF in a window around each position, and the extremes within `DIPOLE_RADIUS_FWHM` taken."""
    sigma = difference.psf_fwhm_px / FWHM_PER_SIGMA
    radius = int(np.ceil(DIPOLE_RADIUS_FWHM * difference.psf_fwhm_px))
    half = radius + int(np.ceil(3.0 * sigma))
    height, width = difference.data.shape
    ratios = np.zeros(len(x))
    for i, (xc, yc) in enumerate(zip(x, y, strict=True)):
        x0, y0 = round(xc), round(yc)
        lo_x, lo_y = max(x0 - half, 0), max(y0 - half, 0)
        window = (slice(lo_y, min(y0 + half + 1, height)), slice(lo_x, min(x0 + half + 1, width)))
        usable = ~difference.bad[window]
        whitened = np.where(usable, difference.data[window] / difference.noise[window], 0.0)
        filtered = ndimage.gaussian_filter(whitened.astype(np.float32), sigma, truncate=3.0)
        cx, cy = x0 - lo_x, y0 - lo_y
        near = filtered[
            max(cy - radius, 0) : cy + radius + 1, max(cx - radius, 0) : cx + radius + 1
        ]
        if near.size:
            ratios[i] = float(near.min()) / max(float(near.max()), 1e-6)
    return ratios

"""The point-spread function of a frame: Moffat seeing, tracking trail and defocus donut.

The PSF is built on a grid `oversample` times finer than the pixels (Moffat profile, convolved
with the trail segment and with the annulus of the out-of-focus pupil), then binned to pixels at
each of `oversample**2` sub-pixel phases. A source takes the stamps of the phases around it,
blended linearly, so it lands pixel-integrated, as on a real detector, with its centroid exactly
where it belongs. `core` is the centred stamp cut to the PSF core, for one FFT convolution of faint
sources.
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from training.simulator.placement import splat_bilinear

CENTRAL_OBSTRUCTION = 0.4
"""Secondary-mirror shadow as a fraction of the pupil diameter: the hole in the donut."""

WING_RADIUS_FWHM = 8.0
"""Full stamps reach this many FWHM out, so bright stars keep their Moffat wings."""

CORE_RADIUS_FWHM = 3.0
"""The core stamp reaches this many FWHM out; faint sources lose nothing visible beyond it."""


@dataclass(frozen=True)
class PsfModel:
    """A frame's PSF as pixel stamps, one per sub-pixel phase, each summing to one."""

    oversample: int
    stamps: np.ndarray
    core: np.ndarray

    def phase_neighbours(
        self, position_px: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Along one axis: the two stamp phases that bracket each position, as centre pixel and
        phase index of each, and the linear weight of the first. Blending the two stamps puts
        the centroid exactly at the position."""
        fine = np.asarray(position_px) * self.oversample + (self.oversample - 1) / 2.0
        lower = np.floor(fine).astype(int)
        pixel0, phase0 = np.divmod(lower, self.oversample)
        pixel1, phase1 = np.divmod(lower + 1, self.oversample)
        return pixel0, phase0, pixel1, phase1, 1.0 - (fine - lower)

    def noise_equivalent_area_px(self) -> float:
        """Pixels a PSF-fitting measurement effectively integrates noise over: 1 / sum(p^2)."""
        return float(1.0 / np.sum(self.core**2))


def moffat_alpha(fwhm: float, beta: float) -> float:
    """The Moffat core width `alpha` that gives a profile of this FWHM."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_image(size: int, fwhm: float, beta: float) -> np.ndarray:
    """A centred Moffat profile on a `size` x `size` grid (size odd), peak one."""
    coords = np.arange(size) - size // 2
    r2 = coords[None, :] ** 2 + coords[:, None] ** 2
    return (1.0 + r2 / moffat_alpha(fwhm, beta) ** 2) ** -beta


def trail_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A uniform line segment of `length` grid steps through the centre of an odd grid."""
    size = 2 * int(np.ceil(length / 2.0)) + 3
    steps = np.linspace(-0.5, 0.5, max(2, int(np.ceil(4 * length)) + 1))
    angle = np.deg2rad(angle_deg)
    x = size // 2 + steps * length * np.cos(angle)
    y = size // 2 + steps * length * np.sin(angle)
    kernel = np.zeros((size, size))
    splat_bilinear(kernel, x, y, np.ones_like(x))
    return kernel / kernel.sum()


def donut_kernel(diameter: float, obstruction: float = CENTRAL_OBSTRUCTION) -> np.ndarray:
    """The defocused pupil: an anti-aliased uniform annulus of outer `diameter` grid steps."""
    outer = diameter / 2.0
    size = 2 * int(np.ceil(outer)) + 3
    coords = np.arange(size) - size // 2
    r = np.hypot(coords[None, :], coords[:, None])
    kernel = np.clip(outer - r + 0.5, 0.0, 1.0) - np.clip(obstruction * outer - r + 0.5, 0.0, 1.0)
    return kernel / kernel.sum()


def fine_psf(
    size: int,
    oversample: int,
    fwhm_px: float,
    beta: float,
    trail_px: float,
    trail_angle_deg: float,
    defocus_px: float,
) -> np.ndarray:
    """The PSF on a grid `oversample` times finer than the pixels, centred, summing to one."""
    image = moffat_image(size, fwhm_px * oversample, beta)
    if trail_px * oversample >= 1.0:
        image = fftconvolve(image, trail_kernel(trail_px * oversample, trail_angle_deg), "same")
    if defocus_px * oversample >= 2.0:
        image = fftconvolve(image, donut_kernel(defocus_px * oversample), "same")
    image = np.clip(image, 0.0, None)
    return image / image.sum()


def build_psf(
    *,
    seeing_fwhm_arcsec: float,
    moffat_beta: float,
    trailing_arcsec: float,
    trail_angle_deg: float,
    defocus_arcsec: float,
    pixel_scale_arcsec: float,
) -> PsfModel:
    """The frame's PSF stamps for its seeing, tracking trail and defocus."""
    fwhm = seeing_fwhm_arcsec / pixel_scale_arcsec
    trail = trailing_arcsec / pixel_scale_arcsec
    defocus = defocus_arcsec / pixel_scale_arcsec
    oversample = 5 if fwhm < 5.0 else 3
    extent = (trail + defocus) / 2.0
    radius = int(np.ceil(WING_RADIUS_FWHM * fwhm + extent)) + 1
    centre = oversample * (radius + 1)
    fine = fine_psf(2 * centre + 1, oversample, fwhm, moffat_beta, trail, trail_angle_deg, defocus)
    side = (2 * radius + 1) * oversample
    stamps = np.empty((oversample, oversample, 2 * radius + 1, 2 * radius + 1))
    for py in range(oversample):
        for px in range(oversample):
            y0, x0 = centre - oversample * radius - py, centre - oversample * radius - px
            window = fine[y0 : y0 + side, x0 : x0 + side]
            stamps[py, px] = window.reshape(2 * radius + 1, oversample, -1, oversample).sum((1, 3))
    stamps /= stamps.sum(axis=(2, 3), keepdims=True)
    core_radius = min(radius, int(np.ceil(CORE_RADIUS_FWHM * fwhm + extent)) + 1)
    mid = oversample // 2
    cut = slice(radius - core_radius, radius + core_radius + 1)
    core = stamps[mid, mid, cut, cut]
    return PsfModel(oversample=oversample, stamps=stamps, core=core / core.sum())

"""Rendering light sources into an image of expected electrons, blurred by the frame's PSF.

Sources whose peak stands clearly above the sky noise get their own full stamp at their exact
sub-pixel phase, wings included. The many faint ones are splatted bilinearly into one image
(which keeps each centroid exact), the light of extended sources (galaxies) is added to it, and
it is convolved once with the PSF core by FFT, so even a 4k frame with tens of thousands of stars
takes about a second.
"""

import numpy as np
from scipy.signal import fftconvolve

from training.simulator.placement import add_stamp, splat_bilinear
from training.simulator.psf import PsfModel

EXACT_PEAK_SIGMA = 10.0
"""Sources with a peak above this many sky-noise sigmas are drawn with their own stamp."""


def render_point_sources(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    electrons: np.ndarray,
    psf: PsfModel,
    sky_noise_e: float,
    extended: np.ndarray | None = None,
) -> np.ndarray:
    """Expected electrons from point sources at 0-based pixel positions (x, y), float32, plus
    the light of `extended` sources (an image of the frame's shape, before the PSF), blurred
    with the faint points."""
    height, width = shape
    exact = electrons * psf.core.max() > EXACT_PEAK_SIGMA * sky_noise_e
    pad = psf.core.shape[0] // 2
    points = np.zeros((height + 2 * pad, width + 2 * pad), dtype=np.float32)
    if extended is not None:
        points[pad : pad + height, pad : pad + width] = extended
    faint = ~exact
    splat_bilinear(points, x[faint] + pad, y[faint] + pad, electrons[faint])
    image = fftconvolve(points, psf.core.astype(np.float32), mode="same")[
        pad : pad + height, pad : pad + width
    ]
    columns = psf.phase_neighbours(x[exact])
    rows = psf.phase_neighbours(y[exact])
    for index, flux in enumerate(electrons[exact]):
        for row, phase_y, weight_y in _bracket(rows, index):
            for col, phase_x, weight_x in _bracket(columns, index):
                stamp = psf.stamps[phase_y, phase_x] * (flux * weight_y * weight_x)
                add_stamp(image, stamp.astype(np.float32), row, col)
    return image


def _bracket(
    neighbours: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], index: int
) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
    """(pixel, phase, weight) of the two stamp phases around source `index` along one axis."""
    pixel0, phase0, pixel1, phase1, weight0 = (values[index] for values in neighbours)
    return (int(pixel0), int(phase0), float(weight0)), (int(pixel1), int(phase1), 1.0 - weight0)

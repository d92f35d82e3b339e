"""Light across the frame: sky background with moonlight gradient, vignetting and clouds.

Functions take pixel coordinates `x`, `y` as arrays that broadcast: pass `np.arange(width)`
and `np.arange(height)[:, None]` for a whole-frame map (float32 ones give a float32 map, built
with one full-frame operation each), or two 1-D arrays for points. Clouds are
a smooth random field with a steep power spectrum (most power on the largest scales, as cirrus
and cloud banks look) that dims starlight; the sky itself is left as measured at the frame
centre, since clouds both block airglow and scatter moonlight.
"""

import numpy as np
from scipy.ndimage import map_coordinates

CLOUD_GRID_CELLS = 64
"""Cells along the long side of the cloud field grid; clouds vary little within one cell."""

CLOUD_SPECTRUM_INDEX = 3.0
"""Power spectrum P(k) ~ k**-index of the cloud field."""


def illumination(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], vignetting_fraction: float
) -> np.ndarray:
    """Relative response of the optics and detector: 1 at the centre, falling to the corners."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    scale = vignetting_fraction / max(cx**2 + cy**2, 1.0)
    return (1.0 - scale * (x - cx) ** 2) - scale * (y - cy) ** 2


def sky_gradient(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], fraction: float, angle_deg: float
) -> np.ndarray:
    """Relative sky level: 1 at the centre, changing by `fraction` across the frame."""
    height, width = shape
    angle = np.deg2rad(angle_deg)
    ux, uy = float(np.cos(angle)), float(np.sin(angle))
    extent = abs(ux) * (width - 1) + abs(uy) * (height - 1)
    scale = fraction / max(extent, 1.0)
    return (1.0 + scale * ux * (x - (width - 1) / 2.0)) + scale * uy * (y - (height - 1) / 2.0)


def cloud_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A zero-mean, unit-variance smooth random field on a coarse grid spanning the frame."""
    height, width = shape
    cells = CLOUD_GRID_CELLS
    grid = (max(4, round(cells * height / max(shape))), max(4, round(cells * width / max(shape))))
    ky = np.fft.fftfreq(grid[0])[:, None]
    kx = np.fft.rfftfreq(grid[1])[None, :]
    k = np.hypot(kx, ky)
    amplitude = np.where(k > 0, np.maximum(k, 1e-12) ** (-CLOUD_SPECTRUM_INDEX / 2.0), 0.0)
    spectrum = np.fft.rfft2(rng.standard_normal(grid)) * amplitude
    field = np.fft.irfft2(spectrum, s=grid)
    return (field - field.mean()) / field.std()


def transmission_grid(field: np.ndarray, transparency: float, patchiness: float) -> np.ndarray:
    """Fraction of starlight passing the clouds on the coarse grid (clipped to [0.01, 1])."""
    return np.clip(transparency * (1.0 + patchiness * field), 0.01, 1.0)


def sample_grid(
    grid: np.ndarray, x: np.ndarray, y: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """A coarse grid spanning the frame, interpolated at pixel positions (x, y)."""
    height, width = shape
    rows = np.asarray(y, dtype=float) * (grid.shape[0] - 1) / max(height - 1, 1)
    cols = np.asarray(x, dtype=float) * (grid.shape[1] - 1) / max(width - 1, 1)
    rows, cols = np.broadcast_arrays(rows, cols)
    return map_coordinates(grid, [rows.ravel(), cols.ravel()], order=3, mode="nearest").reshape(
        rows.shape
    )

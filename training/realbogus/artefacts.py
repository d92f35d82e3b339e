"""Artefacts added to a simulated new frame, so the classifier sees what bogus looks like.

Pure numpy on a float32 frame in ADU: hot pixels (single bright pixels), cosmic-ray tracks
(a few connected pixels), a faint satellite trail, and stars moved or resized a little (the
dipoles and rings of registration and PSF errors); the simulator's own cosmic rays and frame
edges add theirs.
"""

import numpy as np

from imaging.gaussian import FWHM_PER_SIGMA


def add_hot_pixels(
    image: np.ndarray, rng: np.random.Generator, count: int, noise_adu: float
) -> None:
    """Single pixels 10-200 sigma above their neighbours, in place."""
    height, width = image.shape
    y, x = rng.integers(0, height, count), rng.integers(0, width, count)
    image[y, x] += noise_adu * rng.uniform(10.0, 200.0, count).astype(np.float32)


def add_cosmic_rays(
    image: np.ndarray, rng: np.random.Generator, count: int, noise_adu: float
) -> None:
    """Short straight tracks of 2-8 pixels, 8-100 sigma each, in place."""
    height, width = image.shape
    for _ in range(count):
        length = rng.integers(2, 9)
        angle = rng.uniform(0.0, np.pi)
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        steps = np.arange(length)
        xs = np.clip(np.rint(x0 + steps * np.cos(angle)).astype(int), 0, width - 1)
        ys = np.clip(np.rint(y0 + steps * np.sin(angle)).astype(int), 0, height - 1)
        image[ys, xs] += noise_adu * np.float32(rng.uniform(8.0, 100.0))


def add_satellite_trail(
    image: np.ndarray, rng: np.random.Generator, noise_adu: float, width_px: float
) -> None:
    """A straight trail across the frame with a Gaussian profile, 2-20 sigma at its peak."""
    height, width = image.shape
    yy, xx = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0.0, np.pi)
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
    distance = np.abs((xx - x0) * np.sin(angle) - (yy - y0) * np.cos(angle))
    sigma = width_px / FWHM_PER_SIGMA
    peak = noise_adu * rng.uniform(2.0, 20.0)
    image += (peak * np.exp(-(distance**2) / (2.0 * sigma**2))).astype(np.float32)


def add_star_dipoles(
    image: np.ndarray,
    rng: np.random.Generator,
    star_xy: np.ndarray,
    star_flux: np.ndarray,
    fwhm_px: float,
) -> None:
    """Move each star at `star_xy` (n, 2) of flux `star_flux` (ADU) by 0.1-0.5 px and widen or
    narrow it by up to 5 %, in place, as a registration or PSF error would: its subtraction
    leaves the dipoles and rings real differences show around stars (the DECam pair does)."""
    sigma = fwhm_px / FWHM_PER_SIGMA
    half = int(np.ceil(4.0 * sigma * 1.05))
    height, width = image.shape
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    for (x, y), flux in zip(star_xy, star_flux, strict=True):
        cx, cy = round(float(x)), round(float(y))
        if not (half <= cx < width - half and half <= cy < height - half):
            continue
        shift = rng.uniform(0.1, 0.5)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        moved = sigma * (1.0 + rng.uniform(-0.05, 0.05))
        u = offsets[None, :] + cx - x
        v = offsets[:, None] + cy - y
        before = np.exp(-(u**2 + v**2) / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)
        du, dv = u - shift * np.cos(angle), v - shift * np.sin(angle)
        after = np.exp(-(du**2 + dv**2) / (2.0 * moved**2)) / (2.0 * np.pi * moved**2)
        image[cy - half : cy + half + 1, cx - half : cx + half + 1] += (
            flux * (after - before)
        ).astype(np.float32)

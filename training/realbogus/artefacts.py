"""Artefacts added to a simulated new frame, so the classifier sees what bogus looks like.

Pure numpy on a float32 frame in ADU: hot pixels (single bright pixels), cosmic-ray tracks
(a few connected pixels), and a faint satellite trail; the simulator's own cosmic rays, bright
stars (subtraction dipoles) and frame edges add theirs.
"""

import numpy as np


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
    sigma = width_px / 2.3548
    peak = noise_adu * rng.uniform(2.0, 20.0)
    image += (peak * np.exp(-(distance**2) / (2.0 * sigma**2))).astype(np.float32)

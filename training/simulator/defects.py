"""Things on a frame that are not the sky: cosmic rays, hot pixels and satellite trails.

Cosmic rays and hot pixels are in every frame, good ones too. Cosmic rays are sharp (never
blurred by the PSF): a short straight track of one to a few pixels, depositing around a
thousand electrons per pixel. Hot pixels belong to the camera, not the exposure, so their map
comes from the camera's own seed and is the same in every frame it takes. Satellite trails are
straight lines across the whole frame; they are light from the sky, so the caller blurs them
with the PSF like any star.
"""

from dataclasses import dataclass

import numpy as np

from training.simulator.camera import SimCamera


@dataclass(frozen=True)
class PixelHits:
    """Charge added at single pixels: rows, columns and electrons."""

    y: np.ndarray
    x: np.ndarray
    electrons: np.ndarray

    def __len__(self) -> int:
        return len(self.electrons)


@dataclass(frozen=True)
class SatelliteTrail:
    """A straight trail between two points beyond the frame edges, in electrons per pixel."""

    x0: float
    y0: float
    x1: float
    y1: float
    electrons_per_px: float


def hot_pixels(camera: SimCamera) -> PixelHits:
    """The camera's fixed hot pixels with the dark charge they collect in one exposure."""
    rng = np.random.default_rng(camera.defect_seed)
    count = round(camera.hot_pixels_per_mpx * camera.width_px * camera.height_px / 1e6)
    rate_e_per_s = np.exp(rng.uniform(np.log(5.0), np.log(2000.0), count))
    return PixelHits(
        y=rng.integers(0, camera.height_px, count),
        x=rng.integers(0, camera.width_px, count),
        electrons=rate_e_per_s * camera.exptime_s,
    )


def cosmic_rays(rng: np.random.Generator, camera: SimCamera) -> PixelHits:
    """Cosmic-ray hits of one exposure: short tracks of charge, each a few pixels long."""
    area_mpx = camera.width_px * camera.height_px / 1e6
    count = int(rng.poisson(camera.cosmic_rays_per_mpx_per_s * area_mpx * camera.exptime_s))
    ys, xs, charges = [], [], []
    for _ in range(count):
        length = rng.exponential(2.0)
        angle = rng.uniform(0.0, np.pi)
        steps = np.linspace(-0.5, 0.5, int(np.ceil(2 * length)) + 1) * length
        x = rng.uniform(0, camera.width_px) + steps * np.cos(angle)
        y = rng.uniform(0, camera.height_px) + steps * np.sin(angle)
        pixels = np.unique(np.stack([np.rint(y), np.rint(x)]).astype(int), axis=1)
        inside = (
            (pixels[0] >= 0)
            & (pixels[0] < camera.height_px)
            & (pixels[1] >= 0)
            & (pixels[1] < camera.width_px)
        )
        pixels = pixels[:, inside]
        per_px = rng.lognormal(np.log(1200.0), 0.6) * rng.uniform(0.5, 1.0, pixels.shape[1])
        ys.append(pixels[0])
        xs.append(pixels[1])
        charges.append(per_px)
    if not charges:
        empty = np.zeros(0, dtype=int)
        return PixelHits(y=empty, x=empty, electrons=np.zeros(0))
    return PixelHits(y=np.concatenate(ys), x=np.concatenate(xs), electrons=np.concatenate(charges))


def satellite_trails(
    rng: np.random.Generator, count: int, shape: tuple[int, int]
) -> list[SatelliteTrail]:
    """`count` trails crossing the frame at random points and angles, each fully across it."""
    height, width = shape
    reach = float(np.hypot(width, height))
    trails = []
    for _ in range(count):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        angle = rng.uniform(0.0, np.pi)
        dx, dy = reach * np.cos(angle), reach * np.sin(angle)
        trails.append(
            SatelliteTrail(
                x0=cx - dx,
                y0=cy - dy,
                x1=cx + dx,
                y1=cy + dy,
                electrons_per_px=float(np.exp(rng.uniform(np.log(1500.0), np.log(15000.0)))),
            )
        )
    return trails


def trail_samples(
    trail: SatelliteTrail, shape: tuple[int, int], step_px: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every `step_px` along the part of a trail over the frame: (x, y, electrons)."""
    height, width = shape
    length = float(np.hypot(trail.x1 - trail.x0, trail.y1 - trail.y0))
    t = np.arange(0.0, length, step_px) / length
    x = trail.x0 + t * (trail.x1 - trail.x0)
    y = trail.y0 + t * (trail.y1 - trail.y0)
    keep = (x > -8) & (x < width + 8) & (y > -8) & (y < height + 8)
    return x[keep], y[keep], np.full(int(keep.sum()), trail.electrons_per_px * step_px)

"""A small camera of known bias, dark current and flat field, for the calibration and frame-kind
tests: its bias, dark, flat and sky frames written as a camera writes them, and the truth to
check a calibration against."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

SHAPE = (96, 128)
"""Rows, columns: not square, so a transposed master would show."""
BIAS_ADU = 1000.0
READ_NOISE_ADU = 3.0
DARK_ADU_PER_S = 0.2
HOT_ADU_PER_S = 20.0
SKY_ADU = 300.0
STAR_FLUX_ADU = 40_000.0
STAR_SIGMA_PX = 1.5


@dataclass(frozen=True)
class Camera:
    """A detector with a column-patterned bias, a few hot pixels and a vignetted response."""

    shape: tuple[int, int] = SHAPE
    vignetting: float = 0.3
    """Response lost in the corners (0.3: they see 70 % of the centre's light)."""
    seed: int = 0
    binning: tuple[int, int] = (1, 1)
    filter_name: str = "r"
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rng", np.random.default_rng(self.seed))

    @property
    def bias(self) -> np.ndarray:
        columns = np.arange(self.shape[1])
        return np.broadcast_to(BIAS_ADU + 15.0 * np.sin(columns / 7.0), self.shape)

    @property
    def hot_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        fixed = np.random.default_rng(1234)
        return fixed.integers(5, self.shape[0] - 5, 8), fixed.integers(5, self.shape[1] - 5, 8)

    def dark_rate(self) -> np.ndarray:
        rate = np.full(self.shape, DARK_ADU_PER_S)
        rate[self.hot_pixels] = HOT_ADU_PER_S
        return rate

    @property
    def response(self) -> np.ndarray:
        """The flat field's truth: 1 at the centre, 1 - vignetting in the corners."""
        y, x = np.indices(self.shape, dtype=float)
        cy, cx = (self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2
        return 1.0 - self.vignetting * ((x - cx) ** 2 + (y - cy) ** 2) / (cx**2 + cy**2)

    def read_out(self, electrons_adu: np.ndarray, exptime_s: float) -> np.ndarray:
        dark = self.dark_rate() * exptime_s
        noise = self.rng.normal(0.0, READ_NOISE_ADU, self.shape)
        return (self.bias + dark + electrons_adu + noise).astype(np.float32)

    def bias_frame(self) -> np.ndarray:
        return self.read_out(np.zeros(self.shape), 0.0)

    def dark_frame(self, exptime_s: float) -> np.ndarray:
        return self.read_out(np.zeros(self.shape), exptime_s)

    def flat_frame(self, level_adu: float = 20_000.0) -> np.ndarray:
        light = level_adu * self.response
        return self.read_out(light + self.rng.normal(0.0, 1.0, self.shape) * np.sqrt(light), 1.0)

    def sky_light(self, stars: list[tuple[float, float]]) -> np.ndarray:
        """Sky and stars of `STAR_FLUX_ADU` each at (row, column), before the optics."""
        y, x = np.indices(self.shape, dtype=float)
        light = np.full(self.shape, SKY_ADU)
        for row, column in stars:
            r2 = (y - row) ** 2 + (x - column) ** 2
            light += (
                STAR_FLUX_ADU / (2 * np.pi * STAR_SIGMA_PX**2) * np.exp(-r2 / 2 / STAR_SIGMA_PX**2)
            )
        return light

    def sky_frame(self, exptime_s: float, stars: list[tuple[float, float]]) -> np.ndarray:
        return self.read_out(self.sky_light(stars) * self.response, exptime_s)

    def write(self, path: Path, data: np.ndarray, **cards: object) -> Path:
        """The frame as a camera writes it, with its binning and filter and `cards`."""
        header = fits.Header()
        header["XBINNING"], header["YBINNING"] = self.binning
        header["FILTER"] = self.filter_name
        for key, value in cards.items():
            header[key] = value
        path.parent.mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
        return path


def aperture_flux(data: np.ndarray, row: float, column: float, radius: float = 6.0) -> float:
    """A star's flux: the sum in a circle less the median of an annulus around it, per pixel."""
    y, x = np.indices(data.shape, dtype=float)
    r = np.hypot(y - row, x - column)
    sky = float(np.nanmedian(data[(r > radius + 3) & (r < radius + 8)]))
    inside = r <= radius
    return float(np.nansum(data[inside]) - sky * np.count_nonzero(inside))

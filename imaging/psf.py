"""The frame's point-spread function from its clean stars: seeing, elongation, trailing and
focus, in pixels, each with its 1-sigma error.

Three things widen a star, and the fleet grades each against its own limit: the atmosphere
(seeing: a Moffat profile's FWHM), a tracking error during the exposure (trailing: the star
smeared along a segment) and defocus (the star spread over the pupil's annulus). They are told
apart by shape, not size:

- every clean star (isolated, unsaturated, at least 10 sigma at its peak; neighbours masked
  with sep's segmentation map) is fitted with an elliptical, pixel-integrated Moffat
  (`imaging.psf_fit`); the frame's values are medians over the stars after the odd ones
  (galaxies, blends: wider than the rest) are clipped, and their errors the standard error
  of those medians (1.2533 x the MAD-based scatter / sqrt(n));
- trailing stretches the profile along one axis: the ratio rho of the fitted major to minor
  FWHM gives the trail's length in units of the minor FWHM (`TRAIL_PER_MINOR_FWHM`), and
  the minor FWHM, a little widened by the trail (`MINOR_FWHM_PER_SEEING`), gives the
  seeing. Both tables come from fitting the simulator's PSFs (Moffat beta 3-5 convolved with
  a trail, seeing 1.3-5 px, trails 0-6 seeing FWHMs; `training.simulator.psf`): across those
  the trail's length is read within -7/+5 % and the seeing within -4/+7 %;
- defocus flattens the core: on stars round enough (rho below `ROUND_FOR_FOCUS`) the
  stacked radial profile is fitted with a Moffat convolved with the pupil's annulus
  (`imaging.focus`). Once the donut dominates (at least 0.75 of the fit's seeing FWHM, and far
  better fitted than by seeing alone) its diameter is measured and the seeing is that fit's,
  not the elliptical Moffat's, which reads a donut as seeing. Otherwise no donut is seen: the
  focus is 0 with an error of `FOCUS_SYSTEMATIC_PER_FWHM` of the seeing FWHM, since a donut
  smaller than about half the seeing leaves no mark a fit can tell from seeing.
"""

import math
from dataclasses import dataclass

import numpy as np

from imaging.focus import FocusFit, measure_focus
from imaging.gaussian import FWHM_PER_SIGMA, MAD_TO_SIGMA
from imaging.psf_fit import MoffatFits, fit_moffat_stars

MAX_STARS = 40
"""Stars fitted per frame, the brightest: the median of 40 is known to about 1 %."""
MIN_STARS = 3
STAMP_RADIUS_PER_SIGMA = 4.5
"""Stamp radius in units of sep's RMS size of the star along its major axis (2 FWHM for a
Gaussian star), within `STAMP_RADIUS_RANGE_PX`."""
STAMP_RADIUS_RANGE_PX = (4, 24)
MIN_EDGE_DISTANCE_PX = 2.0
CLIP_SIGMA = 3.0
MEDIAN_ERROR_PER_SIGMA = 1.2533
"""The standard error of a median over n values is 1.2533 sigma / sqrt(n)."""
ROUND_FOR_FOCUS = 1.15
"""Major / minor FWHM below which the stars are round enough for a radial focus fit (a trail
shorter than 0.6 seeing FWHM)."""
FOCUS_SYSTEMATIC_PER_FWHM = 0.25
FLAT_CORE_BETA = 8.0
"""The focus fit runs only on stars whose Moffat fits need a flatter core than this: a donut as
wide as the seeing or wider (the only one a fit can find) read beta 12-60 on the simulator's
PSFs, and seeing alone 2.5-5.2 (a quarter of the verdict's cost saved on most frames)."""
SEEING_SYSTEMATIC = 0.03
"""Relative error of the seeing beyond the stars' scatter: the fit's bias on undersampled and
trailed stars (`bench/bench_fwhm.py`)."""
TRAILING_SYSTEMATIC = 0.1
DONUT_SEEING_SYSTEMATIC = 0.15
"""Relative error of the seeing read from a donut's fit: beta and the donut's edge trade
against each other (10-30 % low at D = 3-5 FWHM)."""

_RHO = np.array([1.0, 1.015, 1.057, 1.121, 1.206, 1.436, 1.710, 2.345, 2.988, 3.739, 4.469])
TRAIL_PER_MINOR_FWHM = np.array(
    [0.0, 0.246, 0.488, 0.722, 0.946, 1.362, 1.772, 2.635, 3.457, 4.352, 5.300]
)
MINOR_FWHM_PER_SEEING = np.array(
    [1.0, 1.008, 1.017, 1.031, 1.049, 1.094, 1.121, 1.131, 1.149, 1.141, 1.124]
)


@dataclass(frozen=True)
class StarStamps:
    """Same-sized stamps around candidate stars, background subtracted, with their weights
    (inverse variance; zero on neighbours, masked pixels and beyond the frame), the stars'
    positions in the stamps and their peaks in units of the noise."""

    stamps: np.ndarray
    weights: np.ndarray
    centres: np.ndarray
    peak_snr: np.ndarray
    fwhm_guess_px: np.ndarray

    @classmethod
    def empty(cls, radius: int) -> "StarStamps":
        side = 2 * radius + 1
        return cls(
            np.empty((0, side, side), np.float32),
            np.empty((0, side, side), np.float32),
            np.empty((0, 2)),
            np.empty(0),
            np.empty(0),
        )

    @property
    def radius(self) -> int:
        return int(self.stamps.shape[1] // 2)


@dataclass(frozen=True)
class PsfMeasurement:
    """The frame's PSF in pixels; `defocus_px` is None where the stars were too trailed for
    the radial focus fit."""

    stars: int
    fwhm_px: float
    fwhm_error_px: float
    ellipticity: float
    trailing_px: float
    trailing_error_px: float
    defocus_px: float | None
    defocus_error_px: float | None
    beta: float
    """The median Moffat exponent of the stars' fits (the wings: 2.5-5 for seeing)."""


def stamp_radius(major_sigma_px: np.ndarray) -> int:
    """The stamp radius for stars of these sep RMS sizes along the major axis."""
    size = float(np.median(major_sigma_px)) if len(major_sigma_px) else 1.0
    low, high = STAMP_RADIUS_RANGE_PX
    return int(np.clip(math.ceil(STAMP_RADIUS_PER_SIGMA * size), low, high))


def cut_stamps(
    pixels: np.ndarray,
    usable: np.ndarray,
    segmentation: np.ndarray,
    stars: np.ndarray,
    star_ids: np.ndarray,
    rms: float,
    radius: int,
) -> StarStamps:
    """Stamps around `stars` (sep objects, ids in `segmentation`) of background-subtracted
    `pixels`; `usable` marks the pixels that may count."""
    x, y = stars["x"].astype(np.float64), stars["y"].astype(np.float64)
    height, width = pixels.shape
    inside = (x >= MIN_EDGE_DISTANCE_PX) & (x <= width - 1 - MIN_EDGE_DISTANCE_PX)
    inside &= (y >= MIN_EDGE_DISTANCE_PX) & (y <= height - 1 - MIN_EDGE_DISTANCE_PX)
    x, y, star_ids, stars = x[inside], y[inside], star_ids[inside], stars[inside]
    if not len(x):
        return StarStamps.empty(radius)
    offsets = np.arange(-radius, radius + 1)
    rows = np.round(y).astype(int)[:, np.newaxis, np.newaxis] + offsets[np.newaxis, :, np.newaxis]
    columns = (
        np.round(x).astype(int)[:, np.newaxis, np.newaxis] + offsets[np.newaxis, np.newaxis, :]
    )
    within = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
    rows, columns = rows.clip(0, height - 1), columns.clip(0, width - 1)
    stamps = np.where(within, pixels[rows, columns], 0.0).astype(np.float32)
    owner = segmentation[rows, columns]
    free = (owner == 0) | (owner == star_ids[:, np.newaxis, np.newaxis])
    weights = np.where(within & free & usable[rows, columns], 1.0 / rms**2, 0.0)
    centres = np.column_stack([x - np.round(x) + radius, y - np.round(y) + radius])
    return StarStamps(
        stamps=stamps,
        weights=weights.astype(np.float32),
        centres=centres,
        peak_snr=stars["peak"] / rms,
        fwhm_guess_px=FWHM_PER_SIGMA * np.sqrt(stars["a"] * stars["b"]),
    )


def combined(parts: list[StarStamps]) -> StarStamps:
    """All tiles' stamps at the largest radius among them (the others padded with weight 0),
    keeping the `MAX_STARS` with the highest peaks."""
    radius = max((part.radius for part in parts), default=STAMP_RADIUS_RANGE_PX[0])
    padded = [_padded(part, radius) for part in parts if len(part.stamps)]
    if not padded:
        return StarStamps.empty(radius)
    columns = zip(*map(_fields, padded), strict=True)
    stamps = StarStamps(*(np.concatenate(arrays) for arrays in columns))
    keep = np.argsort(-stamps.peak_snr, kind="stable")[:MAX_STARS]
    return StarStamps(*(array[keep] for array in _fields(stamps)))


def _fields(stamps: StarStamps) -> tuple[np.ndarray, ...]:
    return (stamps.stamps, stamps.weights, stamps.centres, stamps.peak_snr, stamps.fwhm_guess_px)


def _padded(part: StarStamps, radius: int) -> StarStamps:
    grow = radius - part.radius
    if grow == 0:
        return part
    widths = ((0, 0), (grow, grow), (grow, grow))
    return StarStamps(
        np.pad(part.stamps, widths),
        np.pad(part.weights, widths),
        part.centres + grow,
        part.peak_snr,
        part.fwhm_guess_px,
    )


def measure_psf(stars: StarStamps) -> PsfMeasurement | None:
    """Seeing, ellipticity, trailing and focus of the frame from its stars' stamps; None with
    fewer than `MIN_STARS` good fits."""
    if len(stars.stamps) < MIN_STARS:
        return None
    fwhm_guess = float(np.median(stars.fwhm_guess_px))
    fits = fit_moffat_stars(
        stars.stamps, stars.weights, fwhm_guess_px=fwhm_guess, centres=stars.centres
    )
    good = _good_fits(fits, stars.radius)
    if np.count_nonzero(good) < MIN_STARS:
        return None
    rho = fits.fwhm_major_px[good] / fits.fwhm_minor_px[good]
    minor = fits.fwhm_minor_px[good]
    seeing = minor / np.interp(rho, _RHO, MINOR_FWHM_PER_SEEING)
    trailing = minor * _trail_per_minor(rho)
    fwhm, fwhm_error = _median_and_error(seeing)
    trail, trail_error = _median_and_error(trailing)
    beta = float(np.median(fits.beta[good]))
    defocus: float | None = None
    defocus_error: float | None = None
    if float(np.median(rho)) < ROUND_FOR_FOCUS:
        if beta <= FLAT_CORE_BETA:  # a Moffat core: no donut as wide as the seeing
            defocus, defocus_error = 0.0, FOCUS_SYSTEMATIC_PER_FWHM * fwhm
        else:
            focus = measure_focus(
                stars.stamps[good],
                stars.weights[good],
                np.column_stack([fits.x, fits.y])[good],
                fits.background[good],
                fits.flux[good],
                fwhm,
            )
            if focus is not None:
                fwhm, fwhm_error, defocus, defocus_error = _with_focus(fwhm, fwhm_error, focus)
    return PsfMeasurement(
        stars=int(np.count_nonzero(good)),
        fwhm_px=fwhm,
        fwhm_error_px=math.hypot(fwhm_error, SEEING_SYSTEMATIC * fwhm),
        ellipticity=float(np.clip(np.median(1.0 - 1.0 / rho), 0.0, 1.0)),
        trailing_px=trail,
        trailing_error_px=math.hypot(trail_error, TRAILING_SYSTEMATIC * trail),
        defocus_px=defocus,
        defocus_error_px=defocus_error,
        beta=beta,
    )


def _good_fits(fits: MoffatFits, radius: int) -> np.ndarray:
    """Converged fits of plausible stars, the wide outliers (galaxies, blends) clipped."""
    good = fits.converged & (fits.fwhm_minor_px >= 0.5) & (fits.fwhm_major_px < 2.0 * radius)
    good &= fits.beta > 1.3
    size = np.sqrt(np.where(good, fits.fwhm_major_px * fits.fwhm_minor_px, np.nan))
    for _ in range(2):
        if np.count_nonzero(good) < MIN_STARS:
            break
        centre = float(np.median(size[good]))
        spread = MAD_TO_SIGMA * float(np.median(np.abs(size[good] - centre)))
        spread = max(spread, 0.02 * centre)
        good &= np.abs(size - centre) <= CLIP_SIGMA * spread
    return np.asarray(good)


def _trail_per_minor(rho: np.ndarray) -> np.ndarray:
    """The trail's length per minor FWHM for a major / minor ratio (the table, then its last
    slope)."""
    slope = (TRAIL_PER_MINOR_FWHM[-1] - TRAIL_PER_MINOR_FWHM[-2]) / (_RHO[-1] - _RHO[-2])
    beyond = TRAIL_PER_MINOR_FWHM[-1] + slope * (rho - _RHO[-1])
    return np.where(rho > _RHO[-1], beyond, np.interp(rho, _RHO, TRAIL_PER_MINOR_FWHM))


def _median_and_error(values: np.ndarray) -> tuple[float, float]:
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return median, MEDIAN_ERROR_PER_SIGMA * spread / math.sqrt(len(values))


def _with_focus(
    fwhm: float, fwhm_error: float, focus: FocusFit
) -> tuple[float, float, float, float]:
    """Seeing and defocus once the focus fit is known. A dominant donut is measured, and the
    seeing is then the fit's (the elliptical Moffat read the donut as seeing); otherwise no
    donut is seen, which says the blur is under about half the seeing FWHM: 0 with that
    error (a smaller donut's value is the fit trading beta against D, biased high by up to
    one seeing FWHM on frames of a few stars)."""
    if not focus.donut_dominant:
        return fwhm, fwhm_error, 0.0, FOCUS_SYSTEMATIC_PER_FWHM * fwhm
    fwhm = focus.fwhm_px
    fit_error = focus.fwhm_error_px if math.isfinite(focus.fwhm_error_px) else 0.0
    fwhm_error = math.hypot(fit_error, DONUT_SEEING_SYSTEMATIC * fwhm)
    defocus_error = focus.defocus_error_px if math.isfinite(focus.defocus_error_px) else 0.0
    return fwhm, fwhm_error, focus.defocus_px, max(defocus_error, FOCUS_SYSTEMATIC_PER_FWHM * fwhm)

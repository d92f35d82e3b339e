"""Focus: the diameter of the out-of-focus donut, from the stars' stacked radial profile.

A defocused telescope spreads each star over the image of its pupil, an annulus (the secondary
mirror's shadow is the hole), which the atmosphere then blurs: the star is a Moffat profile
convolved with a ring. `measure_focus` stacks the clean stars' pixels by their distance from
the fitted centres (each star normalised by its fitted flux, `imaging.psf_fit`), bins them in
`RADIAL_BIN_PX` rings and fits the profile of

    Moffat(FWHM, beta)  *  annulus(diameter D, hole OBSTRUCTION D)  *  pixel

computed as a Hankel transform: every factor's Fourier transform is known in closed form (the
Moffat's through a Bessel K, the annulus's through Bessel J1, the square pixel's averaged
over angle), so one model is a matrix product, not a convolution. The fit gives the seeing FWHM
(the atmosphere's part alone) and D, each with the error of the least-squares fit. A blur
much smaller than the seeing leaves no mark a fit can find (D < FWHM/2 is indistinguishable
from slightly worse seeing), so a focus error shows only once it dominates the star's shape;
that is where it matters.

The profile is radial: trailed stars (their shape is not) are not measured for focus.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

OBSTRUCTION = 0.4
"""The central obstruction as a fraction of the pupil's diameter: a typical Cassegrain's
secondary, and the simulator's."""
RADIAL_BIN_PX = 0.25
MIN_STARS = 3
K_STEPS = 320
MAX_EVALUATIONS = 200
ATMOSPHERIC_BETA_MAX = 10.0
"""Seeing's profile has Moffat wings, beta about 2.5-5 (4.77 for pure Kolmogorov turbulence).
A fit that needs a flatter core than beta 10 (a Gaussian, beta -> infinity: synthetic or
resampled stars) trades it against a donut it cannot tell from one: such a frame's focus is
not measured."""
DONUT_COST_RATIO = 0.3
DONUT_DOMINANT_PER_FWHM = 0.75
"""A donut is told from seeing when its fit's chi-square is under 0.3 of seeing alone's and it
is at least 0.75 of the seeing FWHM across. On the simulator's PSFs (seeing 1.5-4 px, beta 3-5)
every donut of 2 seeing FWHMs or more passed, one of 1.5 did not, none of 1 or less did; on
Gaussian stars (flatter-cored than any Moffat the fit allows) the ratio was 0.49-1.0."""


@dataclass(frozen=True)
class FocusFit:
    """The stacked profile's seeing FWHM and donut diameter (px), with 1-sigma errors."""

    fwhm_px: float
    fwhm_error_px: float
    defocus_px: float
    defocus_error_px: float
    beta: float
    stars: int
    donut_dominant: bool
    """The donut fits the profile far better than seeing alone and is as wide as the seeing:
    the fit's FWHM is then the seeing (a Moffat alone read the donut as seeing)."""


def measure_focus(
    stamps: np.ndarray,
    weights: np.ndarray,
    centres: np.ndarray,
    backgrounds: np.ndarray,
    fluxes: np.ndarray,
    fwhm_guess_px: float,
) -> FocusFit | None:
    """Fit the donut model to the stars' stacked profile; None with too few stars or no fit.

    `stamps` and `weights` (N, S, S) as given to `imaging.psf_fit.fit_moffat_stars`;
    `centres` (N, 2) the fitted (x, y), `backgrounds` and `fluxes` (N,) the fitted constants.
    """
    if len(stamps) < MIN_STARS:
        return None
    radii, values, errors = stacked_profile(stamps, weights, centres, backgrounds, fluxes)
    if len(radii) < 8:
        return None
    model = _ProfileModel(radii, r_max=float(radii.max()) + 2.0, fwhm_guess_px=fwhm_guess_px)
    weights = 1.0 / errors

    def residuals(params: np.ndarray) -> np.ndarray:
        shape = model.profile(params)
        scale = _best_scale(shape, values, weights)
        return (shape * scale - values) * weights

    seeing_only = _least_squares(
        lambda p: residuals(np.array([p[0], p[1], 0.0])), [math.log(fwhm_guess_px), 1.0]
    )
    donut = _least_squares(residuals, [math.log(fwhm_guess_px) - 0.5, 1.0, 1.5 * fwhm_guess_px])
    if seeing_only is None or donut is None:
        return None
    fit = _focus_fit(donut, seeing_only, len(stamps), len(radii))
    return fit if fit.beta <= ATMOSPHERIC_BETA_MAX else None


def _least_squares(
    function: Callable[[np.ndarray], np.ndarray], start: list[float]
) -> optimize.OptimizeResult | None:
    try:
        fit = optimize.least_squares(function, start, method="lm", max_nfev=MAX_EVALUATIONS)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    return fit if np.all(np.isfinite(fit.x)) else None


def stacked_profile(
    stamps: np.ndarray,
    weights: np.ndarray,
    centres: np.ndarray,
    backgrounds: np.ndarray,
    fluxes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius, mean normalised value and its error of each ring that holds pixels."""
    side = stamps.shape[1]
    yy, xx = np.mgrid[:side, :side].astype(np.float64)
    dx = xx[np.newaxis] - centres[:, 0, np.newaxis, np.newaxis]
    dy = yy[np.newaxis] - centres[:, 1, np.newaxis, np.newaxis]
    radius = np.hypot(dx, dy)
    normalised = (stamps - backgrounds[:, np.newaxis, np.newaxis]) / fluxes[
        :, np.newaxis, np.newaxis
    ]
    use = (weights > 0) & (radius <= (side - 1) / 2.0)
    ring = np.floor(radius[use] / RADIAL_BIN_PX).astype(int)
    count = np.bincount(ring)
    held = count >= 3
    total = np.bincount(ring, normalised[use])
    square = np.bincount(ring, normalised[use] ** 2)
    mean_radius = np.bincount(ring, radius[use])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        spread = np.sqrt(np.maximum(square / count - mean**2, 0.0) / np.maximum(count - 1, 1))
        radii = mean_radius / count
    floor = 1e-4 * float(np.nanmax(np.abs(mean[held]))) if held.any() else 1.0
    return radii[held], mean[held], np.maximum(spread[held], floor)


class _ProfileModel:
    """The radial profile of Moffat * annulus * pixel at fixed radii.

    The Moffat is exact in real space; what the annulus and the pixel change is added as a
    Hankel transform of M(k) (A(k) P(k) - 1). That difference vanishes at k = 0 like k^2, so a
    plain sum over an even grid of k converges (the Moffat's own transform has a kink at
    k = 0 that makes a direct transform's wings wrong by orders of magnitude)."""

    def __init__(self, radii: np.ndarray, r_max: float, fwhm_guess_px: float) -> None:
        k_max = max(12.0, 40.0 / max(fwhm_guess_px, 0.5))
        step = max(math.pi / (2.0 * r_max), k_max / K_STEPS)
        self.radii = radii
        self.k = np.arange(step, k_max, step)
        self.kernel = special.j0(np.outer(radii, self.k)) * (self.k * step / (2.0 * math.pi))
        self.pixel = _pixel_transform(self.k)

    def profile(self, params: np.ndarray) -> np.ndarray:
        log_fwhm, log_beta_less_one, defocus = params
        nu = math.exp(min(max(log_beta_less_one, -0.7), 4.1))
        defocus = abs(defocus)
        alpha = math.exp(log_fwhm) / (2.0 * math.sqrt(2.0 ** (1.0 / (nu + 1.0)) - 1.0))
        z = self.k * alpha
        moffat_transform = np.exp(
            math.log(2.0)
            - special.gammaln(nu)
            + nu * np.log(z / 2.0)
            + np.log(special.kve(nu, z))
            - z
        )
        moffat = nu / (math.pi * alpha**2) * (1.0 + (self.radii / alpha) ** 2) ** -(nu + 1.0)
        change = moffat_transform * (_annulus_transform(self.k, defocus) * self.pixel - 1.0)
        return np.asarray(moffat + self.kernel @ change)


def _best_scale(shape: np.ndarray, values: np.ndarray, weights: np.ndarray) -> float:
    """The flux scale that best matches the profile (linear, solved exactly)."""
    weighted = shape * weights
    denominator = float(weighted @ weighted)
    return float(weighted @ (values * weights)) / denominator if denominator > 0 else 1.0


def _annulus_transform(k: np.ndarray, diameter: float) -> np.ndarray:
    """Fourier transform of a uniform annulus of unit light (1 at k = 0)."""
    if diameter <= 1e-6:
        return np.ones_like(k)
    outer = k * diameter / 2.0
    inner = outer * OBSTRUCTION

    def disc(x: np.ndarray) -> np.ndarray:
        return np.where(x > 1e-8, 2.0 * special.j1(x) / np.maximum(x, 1e-8), 1.0)

    return (disc(outer) - OBSTRUCTION**2 * disc(inner)) / (1.0 - OBSTRUCTION**2)


def _pixel_transform(k: np.ndarray) -> np.ndarray:
    """The square pixel's transform sinc(kx/2) sinc(ky/2), averaged over direction."""
    angles = np.linspace(0.0, math.pi / 2.0, 16, endpoint=False) + math.pi / 64.0
    kx = np.outer(k, np.cos(angles)) / 2.0
    ky = np.outer(k, np.sin(angles)) / 2.0
    return np.asarray(np.mean(np.sinc(kx / math.pi) * np.sinc(ky / math.pi), axis=1))


def _focus_fit(
    donut: optimize.OptimizeResult, seeing_only: optimize.OptimizeResult, stars: int, rings: int
) -> FocusFit:
    log_fwhm, log_beta_less_one, defocus = donut.x
    reduced = 2.0 * donut.cost / max(rings - 4, 1)
    try:
        covariance = np.linalg.inv(donut.jac.T @ donut.jac) * max(reduced, 1.0)
        errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    except np.linalg.LinAlgError:
        errors = np.full(3, np.inf)
    fwhm = math.exp(log_fwhm)
    defocus = abs(float(defocus))
    dominant = (
        donut.cost <= DONUT_COST_RATIO * seeing_only.cost
        and defocus >= DONUT_DOMINANT_PER_FWHM * fwhm
    )
    return FocusFit(
        fwhm_px=fwhm,
        fwhm_error_px=fwhm * float(errors[0]),
        defocus_px=defocus,
        defocus_error_px=float(errors[2]),
        beta=1.0 + math.exp(min(max(log_beta_less_one, -0.7), 4.1)),
        stars=stars,
        donut_dominant=bool(dominant),
    )

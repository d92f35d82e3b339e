"""Stellar PSF fits: an elliptical Moffat profile, integrated over each pixel, fitted to many
stars at once.

`fit_moffat_stars` takes same-sized stamps centred on clean stars (background already
subtracted, neighbours masked) and fits each with

    I(x, y) = A * mean over the pixel of (1 + d^T M d) ** -beta + B,   d = (x - x0, y - y0),

by Levenberg-Marquardt, vectorised over the stars (every star is its own fit; numpy does the
loop, and a star leaves it once its fit has settled). `M = L L^T` with `L` lower triangular
and a positive diagonal, so the ellipse stays valid whatever the step; its eigenvalues give
the Moffat core widths `alpha` of the major and minor axes, and
FWHM = 2 alpha sqrt(2 ** (1 / beta) - 1). The profile is averaged over a few points in each
pixel while the stars are narrow (`SUBSAMPLES`): a well-sampled profile barely changes within
a pixel, but a 1.2 px star does (it is the light that fell on the pixel that a detector
records), and a fit that ignored it would read such stars 5-30 % wide, by an amount that
depends on where in its pixel the star fell. With `beta` free the profile spans real seeing's
Moffat wings (beta 2.5-5) and a Gaussian core (beta -> infinity), so the FWHM is read at half
the maximum of the fitted profile, unbiased by the wings, and continuous (not a count of
pixels above half the peak).
"""

import math
from dataclasses import dataclass

import numpy as np

SUBSAMPLES = ((3.0, 3), (6.0, 2))
"""Points per pixel side (second) for stars narrower than the first, in px; one point above.
Pixel integration adds 1/12 px^2 to each axis's variance: 1.3 % of a 6 px star's, which a
single point misreads by 0.6 % in FWHM."""
ITERATIONS = 12
SETTLED = 1e-5
"""A step that lowers chi-square by less than this fraction ends a star's fit."""
BETA_START = 3.5
BETA_MIN, BETA_MAX = 1.2, 60.0
"""The fitted beta's range: below 1.2 a Moffat has almost no core; at 60 it is a Gaussian to
within 0.3 % in FWHM."""
DAMPING_START = 1e-3


@dataclass(frozen=True)
class MoffatFits:
    """One elliptical Moffat per star, in the stamps' pixel coordinates (0 = the first pixel's
    centre); `converged` marks the fits to trust."""

    x: np.ndarray
    y: np.ndarray
    amplitude: np.ndarray
    background: np.ndarray
    fwhm_major_px: np.ndarray
    fwhm_minor_px: np.ndarray
    major_angle_rad: np.ndarray
    beta: np.ndarray
    converged: np.ndarray

    @property
    def flux(self) -> np.ndarray:
        """Total light of each fitted profile: A pi alpha_major alpha_minor / (beta - 1)."""
        shape = np.sqrt(2.0 ** (1.0 / self.beta) - 1.0)
        alpha_major = self.fwhm_major_px / (2.0 * shape)
        alpha_minor = self.fwhm_minor_px / (2.0 * shape)
        return self.amplitude * math.pi * alpha_major * alpha_minor / (self.beta - 1.0)


def moffat_fwhm(alpha: np.ndarray | float, beta: np.ndarray | float) -> np.ndarray:
    """The FWHM of a Moffat profile of core width `alpha` and exponent `beta`."""
    return np.asarray(2.0 * np.asarray(alpha) * np.sqrt(2.0 ** (1.0 / np.asarray(beta)) - 1.0))


def fit_moffat_stars(
    stamps: np.ndarray,
    weights: np.ndarray,
    *,
    fwhm_guess_px: float,
    centres: np.ndarray | None = None,
) -> MoffatFits:
    """Fit every stamp (N, S, S) with an elliptical, pixel-integrated Moffat plus a constant.

    `weights` (same shape) are inverse variances, zero where a pixel must not count (a
    neighbour, a masked pixel); `centres` (N, 2) are first guesses (x, y) of the star
    positions, the stamps' centres by default.
    """
    count, side = stamps.shape[0], stamps.shape[1]
    subsample = next((n for below, n in SUBSAMPLES if fwhm_guess_px < below), 1)
    grid = _pixel_grid(side, subsample)
    data = stamps.reshape(count, -1).astype(np.float64)
    weight = weights.reshape(count, -1).astype(np.float64)
    params = _starting_params(data, side, fwhm_guess_px, centres)
    damping = np.full(count, DAMPING_START)
    chi2 = np.sum(weight * (data - _model(params, grid)) ** 2, axis=1)
    active = np.arange(count)
    for _ in range(ITERATIONS):
        if not len(active):
            break
        settled = _step(params, chi2, damping, active, data, weight, grid)
        active = active[~settled]
    return _fits_from_params(params, np.isfinite(chi2))


def _step(
    params: np.ndarray,
    chi2: np.ndarray,
    damping: np.ndarray,
    active: np.ndarray,
    data: np.ndarray,
    weight: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """One Levenberg-Marquardt step of the `active` stars, in place; which of them settled."""
    current = params[active]
    model, jacobian = _model_and_jacobian(current, grid)
    weighted = jacobian * weight[active, :, np.newaxis]
    hessian = weighted.transpose(0, 2, 1) @ jacobian
    residual = (data[active] - model)[:, :, np.newaxis]
    gradient = (weighted.transpose(0, 2, 1) @ residual)[:, :, 0]
    diagonal = np.einsum("nii->ni", hessian)
    lam = damping[active, np.newaxis]
    damped = hessian + (lam * diagonal + 1e-12)[:, :, np.newaxis] * np.eye(current.shape[1])
    side = round(math.sqrt(data.shape[1]))
    trial = _bounded(current + _solve(damped, gradient), side)
    trial_chi2 = np.sum(weight[active] * (data[active] - _model(trial, grid)) ** 2, axis=1)
    old_chi2 = chi2[active]
    better = np.isfinite(trial_chi2) & (trial_chi2 < old_chi2)
    params[active[better]] = trial[better]
    chi2[active[better]] = trial_chi2[better]
    damping[active] = np.where(better, lam[:, 0] / 10.0, lam[:, 0] * 10.0).clip(1e-9, 1e9)
    small_gain = old_chi2 - trial_chi2 <= SETTLED * old_chi2
    return np.asarray((better & small_gain) | (damping[active] >= 1e6))


def _pixel_grid(side: int, subsample: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y (K, P) of the K sub-pixel points of each of a stamp's P pixels."""
    centres = np.arange(side, dtype=np.float64)
    offsets = (np.arange(subsample) + 0.5) / subsample - 0.5
    sub_y, sub_x = np.meshgrid(offsets, offsets, indexing="ij")
    pixel_y, pixel_x = np.meshgrid(centres, centres, indexing="ij")
    x = sub_x.reshape(-1, 1) + pixel_x.reshape(1, -1)
    y = sub_y.reshape(-1, 1) + pixel_y.reshape(1, -1)
    return x.astype(np.float32), y.astype(np.float32)


def _starting_params(
    data: np.ndarray, side: int, fwhm_px: float, centres: np.ndarray | None
) -> np.ndarray:
    """[x0, y0, A, B, log L11, log L22, L21, log(beta - 1)] per star."""
    count = data.shape[0]
    if centres is None:
        centres = np.full((count, 2), (side - 1) / 2.0)
    alpha = max(fwhm_px, 0.5) / float(moffat_fwhm(1.0, BETA_START))
    border = np.concatenate(
        [
            data.reshape(count, side, side)[:, [0, -1], :].reshape(count, -1),
            data.reshape(count, side, side)[:, :, [0, -1]].reshape(count, -1),
        ],
        axis=1,
    )
    background = np.median(border, axis=1)
    params = np.empty((count, 8))
    params[:, 0:2] = centres
    params[:, 2] = np.max(data, axis=1) - background
    params[:, 3] = background
    params[:, 4] = params[:, 5] = -math.log(alpha)
    params[:, 6] = 0.0
    params[:, 7] = math.log(BETA_START - 1.0)
    return params


def _bounded(params: np.ndarray, side: int) -> np.ndarray:
    """Parameters kept where the model means something: the centre inside the stamp, widths
    between a tenth of a pixel and the stamp, beta in its range."""
    bounded = params.copy()
    bounded[:, 0:2] = bounded[:, 0:2].clip(0.0, side - 1.0)
    bounded[:, 4:6] = bounded[:, 4:6].clip(-math.log(4.0 * side), math.log(10.0))
    bounded[:, 7] = bounded[:, 7].clip(math.log(BETA_MIN - 1.0), math.log(BETA_MAX - 1.0))
    return bounded


def _quadratic(params: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Offsets, the Cholesky factor's terms and log(1 + q) at every sub-pixel point, as
    (K, N, P) arrays: sub-pixel point, star, pixel (the mean over K is then a fast sum of
    contiguous blocks)."""
    x, y = grid
    single = params.astype(np.float32)
    dx = x[:, np.newaxis, :] - single[np.newaxis, :, 0, np.newaxis]
    dy = y[:, np.newaxis, :] - single[np.newaxis, :, 1, np.newaxis]
    e1 = np.exp(single[:, 4])[:, np.newaxis]
    e2 = np.exp(single[:, 5])[:, np.newaxis]
    l21 = single[:, 6, np.newaxis]
    w1 = e1 * dx + l21 * dy
    w2 = e2 * dy
    return dx, dy, w1, w2, np.log1p(w1 * w1 + w2 * w2)


def _model(params: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    log_base = _quadratic(params, grid)[-1]
    beta = (1.0 + np.exp(params[:, 7])[:, np.newaxis]).astype(np.float32)
    profile = np.exp(-beta * log_base).mean(axis=0, dtype=np.float64)
    return params[:, 2, np.newaxis] * profile + params[:, 3, np.newaxis]


def _model_and_jacobian(
    params: np.ndarray, grid: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The model (N, P) and its derivatives (N, P, 8) by the eight parameters."""
    dx, dy, w1, w2, log_base = _quadratic(params, grid)
    beta = 1.0 + np.exp(params[:, 7])[:, np.newaxis]
    amplitude = params[:, 2, np.newaxis]
    e1 = np.exp(params[:, 4])[:, np.newaxis]
    e2 = np.exp(params[:, 5])[:, np.newaxis]
    l21 = params[:, 6, np.newaxis]
    power = np.exp(-beta.astype(np.float32) * log_base)
    # d model / d q = -A beta (1 + q) ** (-beta - 1): A beta is applied after the means.
    slope = power * np.exp(-log_base)
    along = slope * w1
    across = slope * w2
    mean_power = power.mean(axis=0, dtype=np.float64)
    mean_along = along.mean(axis=0, dtype=np.float64)
    scale = -amplitude * beta
    jacobian = np.empty((*mean_power.shape, 8))
    jacobian[:, :, 0] = scale * (-2.0 * e1 * mean_along)
    jacobian[:, :, 1] = scale * (-2.0 * (l21 * mean_along + e2 * across.mean(axis=0, dtype=float)))
    jacobian[:, :, 2] = mean_power
    jacobian[:, :, 3] = 1.0
    jacobian[:, :, 4] = scale * (2.0 * e1 * (along * dx).mean(axis=0, dtype=float))
    jacobian[:, :, 5] = scale * (2.0 * e2 * (across * dy).mean(axis=0, dtype=float))
    jacobian[:, :, 6] = scale * (2.0 * (along * dy).mean(axis=0, dtype=float))
    jacobian[:, :, 7] = -amplitude * (beta - 1.0) * (log_base * power).mean(axis=0, dtype=float)
    model = amplitude * mean_power + params[:, 3, np.newaxis]
    return model, jacobian


def _solve(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Batched solve; a singular system gives a zero step."""
    try:
        return np.linalg.solve(matrices, vectors[:, :, np.newaxis])[:, :, 0]
    except np.linalg.LinAlgError:
        steps = np.zeros_like(vectors)
        for index, (matrix, vector) in enumerate(zip(matrices, vectors, strict=True)):
            try:
                steps[index] = np.linalg.solve(matrix, vector)
            except np.linalg.LinAlgError:
                continue
        return steps


def _fits_from_params(params: np.ndarray, finite: np.ndarray) -> MoffatFits:
    e1, e2, l21 = np.exp(params[:, 4]), np.exp(params[:, 5]), params[:, 6]
    m11, m12, m22 = e1 * e1, e1 * l21, l21 * l21 + e2 * e2
    half_trace = (m11 + m22) / 2.0
    spread = np.hypot((m11 - m22) / 2.0, m12)
    small, large = half_trace - spread, half_trace + spread
    beta = 1.0 + np.exp(params[:, 7])
    with np.errstate(divide="ignore", invalid="ignore"):
        fwhm_major = moffat_fwhm(1.0 / np.sqrt(small), beta)
        fwhm_minor = moffat_fwhm(1.0 / np.sqrt(large), beta)
    # The major axis is the eigenvector of the smaller eigenvalue.
    angle = 0.5 * np.arctan2(-2.0 * m12, m22 - m11)
    converged = finite & np.isfinite(fwhm_major) & np.isfinite(fwhm_minor) & (params[:, 2] > 0)
    return MoffatFits(
        x=params[:, 0],
        y=params[:, 1],
        amplitude=params[:, 2],
        background=params[:, 3],
        fwhm_major_px=fwhm_major,
        fwhm_minor_px=fwhm_minor,
        major_angle_rad=angle,
        beta=beta,
        converged=converged,
    )

"""PSF matching by an Alard-Lupton kernel fit: the sharper image convolved to the blurrier one.

The kernel is a linear combination of Gaussians of three widths, each multiplied by polynomials
in the kernel coordinates (Alard & Lupton 1998; degrees 4, 3, 2), plus a constant differential
background. Its coefficients are found by weighted linear least squares on stamps around stars
both images share, with two rounds of clipping stamps that fit badly (variables, blends,
cosmic rays), then solved twice more with every pixel weighted by its full variance (sky plus
the stars' own noise, fitted on the residuals), so the cores of the brightest stars do not
dominate the fit. The kernel's sum is the photometric scale between the two images.

Why this method: it is linear, fast on a small number of stamps, explainable (a kernel you can
look at and a scale you can check), and needs only numpy; it handles the PSF differences of one
telescope's frames (seeing, mild ellipticity). One kernel is fitted per frame: across a 4k chip
the PSF varies slowly, and the real/bogus step absorbs what a constant kernel leaves.
"""

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft, signal
from scipy.optimize import nnls

from imaging.gaussian import FWHM_PER_SIGMA, MAD_TO_SIGMA

GAUSSIAN_DEGREES = (4, 3, 2)
STAMP_HALF_PX_PER_FWHM = 2.0
CLIP_ROUNDS = 2
CLIP_MADS = 4.0
RIDGE = 1e-6
CONVOLVE_BAND_ROWS = 512
NOISE_MODEL_BINS = 20
SOURCE_NOISE_ROUNDS = 2
CHI2_1_MEDIAN = 0.4549364
"""The median of a squared unit Gaussian: a robust variance is the median square over it."""


class KernelFitError(ValueError):
    """Too few usable stars, or a fit that makes no sense; the message says why."""


@dataclass(frozen=True)
class KernelSolution:
    """A fitted convolution kernel, its photometric scale and how well it fits."""

    kernel: np.ndarray
    background_adu: float
    convolved: Literal["reference", "new"]
    stamps_used: int
    residual_chi2: float
    source_noise_per_adu: float
    mismatch_fraction: float

    @property
    def photometric_scale(self) -> float:
        """Flux in the target image per unit flux in the convolved image."""
        return float(self.kernel.sum())


def kernel_half_width_px(target_fwhm_px: float) -> int:
    """Half the kernel side: wide enough for the matching Gaussian and its wings."""
    return int(np.clip(np.ceil(1.6 * target_fwhm_px), 4, 15))


def gaussian_basis(half_width_px: int, source_fwhm_px: float, target_fwhm_px: float) -> np.ndarray:
    """The Alard-Lupton basis `[n, k, k]`: Gaussians times polynomials in (u, v)."""
    sigma_match = np.sqrt(max(target_fwhm_px**2 - source_fwhm_px**2, 0.5)) / FWHM_PER_SIGMA
    sigmas = (0.5 * sigma_match, sigma_match, 2.0 * sigma_match)
    u = np.arange(-half_width_px, half_width_px + 1, dtype=np.float64)
    uu, vv = np.meshgrid(u, u)
    basis = []
    for sigma, degree in zip(sigmas, GAUSSIAN_DEGREES, strict=True):
        gauss = np.exp(-(uu**2 + vv**2) / (2.0 * max(sigma, 0.3) ** 2))
        gauss /= gauss.sum()
        for i in range(degree + 1):
            for j in range(degree + 1 - i):
                basis.append(gauss * (uu / half_width_px) ** i * (vv / half_width_px) ** j)
    return np.array(basis)


def _stamp_design(
    source: np.ndarray, basis: np.ndarray, x: int, y: int, half: int
) -> np.ndarray | None:
    """Columns of the design matrix on one stamp: the source patch correlated with each basis."""
    hw = basis.shape[1] // 2
    lo_y, hi_y, lo_x, hi_x = y - half - hw, y + half + hw + 1, x - half - hw, x + half + hw + 1
    if lo_y < 0 or lo_x < 0 or hi_y > source.shape[0] or hi_x > source.shape[1]:
        return None
    patch = source[lo_y:hi_y, lo_x:hi_x].astype(np.float64)
    windows = sliding_window_view(patch, basis.shape[1:])
    flat = windows.reshape(-1, basis.shape[1] * basis.shape[2])
    return flat @ basis.reshape(len(basis), -1).T


def fit_kernel(
    source: np.ndarray,
    target: np.ndarray,
    target_variance: np.ndarray,
    stamp_xy: np.ndarray,
    *,
    source_fwhm_px: float,
    target_fwhm_px: float,
    convolved: Literal["reference", "new"],
    min_stamps: int,
) -> KernelSolution:
    """Fit `target ~ kernel * source + background` on stamps centred at `stamp_xy` (n, 2)."""
    half_width = kernel_half_width_px(target_fwhm_px)
    basis = gaussian_basis(half_width, source_fwhm_px, target_fwhm_px)
    half = int(np.ceil(STAMP_HALF_PX_PER_FWHM * target_fwhm_px)) + 1
    designs, targets, weights = [], [], []
    for x, y in np.rint(stamp_xy).astype(int):
        design = _stamp_design(source, basis, x, y, half)
        if design is None:
            continue
        patch = target[y - half : y + half + 1, x - half : x + half + 1].astype(np.float64)
        variance = target_variance[y - half : y + half + 1, x - half : x + half + 1]
        if not (np.isfinite(design).all() and np.isfinite(patch).all()):
            continue
        designs.append(np.column_stack([design, np.ones(len(design))]))
        targets.append(patch.ravel())
        weights.append(1.0 / np.maximum(variance.ravel().astype(np.float64), 1e-12))
    if len(designs) < min_stamps:
        raise KernelFitError(
            f"only {len(designs)} stars usable to fit the PSF-matching kernel (need {min_stamps})"
        )
    keep = np.ones(len(designs), dtype=bool)
    for _ in range(CLIP_ROUNDS + 1):
        coefficients = _solve(designs, targets, weights, keep)
        chi2 = np.array(
            [
                np.mean((t - d @ coefficients) ** 2 * w)
                for d, t, w in zip(designs, targets, weights, strict=True)
            ]
        )
        # Clip on the residual relative to the star's own light: chi2 alone grows with
        # brightness (photon noise, PSF mismatch) and would throw the best stamps away.
        relative = np.array(
            [
                np.sqrt(np.sum((t - d @ coefficients) ** 2 * w) / max(np.sum(t**2 * w), 1e-12))
                for d, t, w in zip(designs, targets, weights, strict=True)
            ]
        )
        median = np.median(relative[keep])
        mad = np.median(np.abs(relative[keep] - median)) * MAD_TO_SIGMA
        new_keep = relative <= median + CLIP_MADS * max(mad, 1e-3 * median)
        if new_keep.sum() < min_stamps or (new_keep == keep).all():
            break
        keep = new_keep
    noise_per_adu, mismatch = _residual_noise_model(designs, targets, weights, keep, coefficients)
    for _ in range(SOURCE_NOISE_ROUNDS):
        source_weights = [
            1.0 / (1.0 / w + _source_variance(d @ coefficients, noise_per_adu, mismatch))
            for d, w in zip(designs, weights, strict=True)
        ]
        coefficients = _solve(designs, targets, source_weights, keep)
        noise_per_adu, mismatch = _residual_noise_model(
            designs, targets, weights, keep, coefficients
        )
    kernel_correlation = np.tensordot(coefficients[:-1], basis, axes=1)
    return KernelSolution(
        kernel=kernel_correlation[::-1, ::-1].astype(np.float32),
        background_adu=float(coefficients[-1]),
        convolved=convolved,
        stamps_used=int(keep.sum()),
        residual_chi2=float(np.median(chi2[keep])),
        source_noise_per_adu=noise_per_adu,
        mismatch_fraction=mismatch,
    )


def _source_variance(model: np.ndarray, noise_per_adu: float, mismatch: float) -> np.ndarray:
    """The stars' own variance on a stamp: photon noise and the part no kernel matches."""
    light = np.maximum(model, 0.0)
    return noise_per_adu * light + (mismatch * light) ** 2


def _solve(
    designs: list[np.ndarray],
    targets: list[np.ndarray],
    weights: list[np.ndarray],
    keep: np.ndarray,
) -> np.ndarray:
    n = designs[0].shape[1]
    normal = np.zeros((n, n))
    rhs = np.zeros(n)
    for d, t, w, used in zip(designs, targets, weights, keep, strict=True):
        if used:
            dw = d * w[:, None]
            normal += d.T @ dw
            rhs += dw.T @ t
    normal += RIDGE * np.trace(normal) / n * np.eye(n)
    return np.linalg.solve(normal, rhs)


def _residual_noise_model(
    designs: list[np.ndarray],
    targets: list[np.ndarray],
    weights: list[np.ndarray],
    keep: np.ndarray,
    coefficients: np.ndarray,
) -> tuple[float, float]:
    """Excess residual variance on the stamps as `a * model + (b * model)^2` (a, b >= 0):
    photon noise of the stars and the part of their light a single kernel cannot match.

    The stamps' pixels are grouped into `NOISE_MODEL_BINS` bins of equal count by model light;
    each bin's variance is robust (its median squared residual over that of a unit Gaussian), so
    that a few bad pixels on the stamps (cosmic rays, hot pixels) cannot raise the noise of every
    galaxy in the frame (with hot pixels among the stamps a plain fit gave a = 53 where the
    photons give 0.7). The two terms are fitted to the bins' excess with weights for each bin's
    relative error."""
    model = np.concatenate(
        [d @ coefficients for d, used in zip(designs, keep, strict=True) if used]
    )
    residual = np.concatenate(
        [t - d @ coefficients for d, t, used in zip(designs, targets, keep, strict=True) if used]
    )
    sky_variance = np.concatenate([1.0 / w for w, used in zip(weights, keep, strict=True) if used])
    bright = model > 0
    if bright.sum() < NOISE_MODEL_BINS * 10:
        return 0.0, 0.0
    order = np.argsort(model[bright])
    bins = np.array_split(order, NOISE_MODEL_BINS)
    light = np.array([np.median(model[bright][b]) for b in bins])
    total = np.array([np.median(residual[bright][b] ** 2) / CHI2_1_MEDIAN for b in bins])
    excess = total - np.array([np.median(sky_variance[bright][b]) for b in bins])
    relative = 1.0 / np.maximum(total, 1e-12)
    design = np.column_stack([light, light**2]) * relative[:, None]
    solution, _ = nnls(design, excess * relative)
    return float(solution[0]), float(np.sqrt(solution[1]))


def convolve(
    image: np.ndarray, kernel: np.ndarray, zero_where: np.ndarray | None = None
) -> np.ndarray:
    """`image` convolved with `kernel` (same shape, float32, zero outside the image), by FFT on
    every core over bands of `CONVOLVE_BAND_ROWS` rows, each read with the kernel's height of
    rows from its neighbours. As fast as one FFT over the whole frame (and 2.3x faster than
    scipy's overlap-add on a 4096² frame with a 21² kernel), with the memory of one band: one
    FFT over a 4096² frame held ~350 MB of spectra at once. Pixels where `zero_where` is true
    count as zero (masked band by band, not in a copy of the image)."""
    margin = kernel.shape[0] // 2
    height = image.shape[0]
    out = np.empty(image.shape, dtype=np.float32)
    with fft.set_workers(os.cpu_count() or 1):
        for top in range(0, height, CONVOLVE_BAND_ROWS):
            bottom = min(top + CONVOLVE_BAND_ROWS, height)
            low, high = max(top - margin, 0), min(bottom + margin, height)
            band = image[low:high]
            if zero_where is not None:
                band = np.where(zero_where[low:high], np.float32(0.0), band)
            convolved = signal.fftconvolve(band, kernel, mode="same")
            out[top:bottom] = convolved[top - low : bottom - low]
    return out

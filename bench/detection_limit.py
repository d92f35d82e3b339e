"""The faint end of an ideal transient search: how complete a pipeline fooled only by noise can
be at a given number of false candidates a frame, so the bench can say how far from it we are.

The ideal pipeline measures every source at its full S/N in the best possible difference image
(`SearchPair.difference_snr`: its measured S/N is that plus unit Gaussian noise), tells every
artefact from a real source, and so is fooled only by noise: the peaks of the difference's noise
after matched filtering. Above a high threshold `u` (in sigma) a Gaussian noise field smoothed
by a PSF of width `s` pixels has `A u exp(-u²/2) / ((2π)^(3/2) 2s²)` peaks on `A` pixels (the
expected Euler characteristic of its excursion set, Adler 1981; Worsley et al. 1996), which no
real/bogus classifier can tell from point sources of the same S/N (the matched-filter S/N is the
most powerful test for a point source in Gaussian noise; Zackay, Ofek & Gal-Yam 2016). Choosing
each frame's threshold so that the peaks above them meet the allowed false rate with the most
sources found gives the completeness of that ideal pipeline.

It is a reference point, not a strict bound: the peak count is for a continuous field (a search
on pixels sees fewer, and its sources lose some S/N too), and a bench of ~100 faint injections
measures completeness to about 5 points.
"""

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
THRESHOLD_GRID_SIGMA = np.arange(3.0, 8.0, 0.005)
"""The thresholds an ideal pipeline chooses among, per frame."""


def noise_peaks_per_frame(
    threshold_sigma: float | np.ndarray, fwhm_px: float, area_px: float
) -> float | np.ndarray:
    """Expected peaks above `threshold_sigma` of Gaussian noise matched-filtered by a Gaussian
    PSF of `fwhm_px`, on `area_px` pixels (accurate above ~3 sigma)."""
    sigma_px = fwhm_px / FWHM_PER_SIGMA
    u = np.asarray(threshold_sigma, dtype=float)
    return area_px * u * np.exp(-(u**2) / 2.0) / ((2.0 * np.pi) ** 1.5 * 2.0 * sigma_px**2)


def ideal_completeness(
    difference_snr: np.ndarray,
    fwhm_px_per_frame: Sequence[float],
    area_px: float,
    false_per_frame: float,
) -> tuple[float, np.ndarray]:
    """The fraction of sources of these ideal difference S/N that an ideal pipeline finds with
    `false_per_frame` false candidates a frame on average, and its threshold (sigma) on each
    frame. Frames with a broader PSF hold fewer noise peaks and get a lower threshold: the
    thresholds maximise the completeness for the allowed peaks (each frame's marginal
    completeness per noise peak is the same, a Lagrange multiplier found by bisection)."""
    fwhms = np.asarray(fwhm_px_per_frame, dtype=float)
    if len(fwhms) == 0:
        raise ValueError("no frames: cannot count their noise peaks")
    grid = THRESHOLD_GRID_SIGMA
    completeness = norm.cdf(np.asarray(difference_snr, dtype=float)[:, None] - grid).mean(axis=0)
    peaks = np.array([noise_peaks_per_frame(grid, fwhm, area_px) for fwhm in fwhms])

    def best_thresholds(price: float) -> np.ndarray:
        return np.argmax(completeness[None, :] - price * peaks, axis=1)

    def mean_peaks(price: float) -> float:
        chosen = best_thresholds(price)
        return float(peaks[np.arange(len(fwhms)), chosen].mean())

    low, high = 1e-9, 1e3  # prices of a noise peak: everything passes / nothing does
    for _ in range(100):
        middle = np.sqrt(low * high)
        low, high = (middle, high) if mean_peaks(middle) > false_per_frame else (low, middle)
    chosen = best_thresholds(high)
    return float(completeness[chosen].mean()), grid[chosen]


def threshold_for_false_rate(
    false_scores_per_frame: Sequence[np.ndarray], false_per_frame: float
) -> float:
    """The lowest real/bogus threshold with at most `false_per_frame` false candidates a frame
    (scores of the false candidates of each frame); above 1 if even the best-scored pass."""
    scores = np.sort(np.concatenate([np.asarray(s, dtype=float) for s in false_scores_per_frame]))
    allowed = int(np.floor(false_per_frame * len(false_scores_per_frame)))
    if allowed >= len(scores):
        return 0.0
    return float(np.nextafter(scores[len(scores) - 1 - allowed], np.inf))

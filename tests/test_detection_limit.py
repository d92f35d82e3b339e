"""The bench's faint-end limit: noise peaks of a matched-filtered Gaussian field, the ideal
pipeline's completeness, and our real/bogus threshold at a false-candidate rate."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import norm

from bench.detection_limit import (
    ideal_completeness,
    noise_peaks_per_frame,
    threshold_for_false_rate,
)
from imaging.gaussian import FWHM_PER_SIGMA


def test_noise_peaks_per_frame_counts_the_peaks_of_smoothed_gaussian_noise():
    # a broad PSF, so that sampling on pixels hardly lowers the peaks
    rng = np.random.default_rng(5)
    fwhm, threshold, frames = 8.0, 3.0, 4
    peaks = 0
    for _ in range(frames):
        field = ndimage.gaussian_filter(
            rng.standard_normal((1024, 1024)), fwhm / FWHM_PER_SIGMA, mode="wrap", truncate=5
        )
        field /= field.std()
        local_max = field == ndimage.maximum_filter(field, 3, mode="wrap")
        peaks += int(np.count_nonzero(local_max & (field > threshold)))
    expected = noise_peaks_per_frame(threshold, fwhm, 1024.0**2)
    assert peaks / frames == pytest.approx(expected, rel=0.15)
    # sharper PSFs make more independent patches of noise, hence more peaks
    assert noise_peaks_per_frame(threshold, fwhm / 2, 1024.0**2) == pytest.approx(4 * expected)


def test_the_ideal_pipeline_finds_half_the_sources_at_its_threshold_and_more_if_allowed_noise():
    strict, (sigma,) = ideal_completeness(np.array([5.0]), [3.0], 1024.0**2, 0.1)
    at_threshold, _ = ideal_completeness(np.array([sigma]), [3.0], 1024.0**2, 0.1)
    loose, (loose_sigma,) = ideal_completeness(np.array([5.0]), [3.0], 1024.0**2, 1.0)
    assert at_threshold == pytest.approx(0.5, abs=0.01)
    assert loose_sigma < sigma and loose > strict
    assert noise_peaks_per_frame(sigma, 3.0, 1024.0**2) == pytest.approx(0.1, rel=0.02)


def test_the_ideal_pipeline_spends_its_false_candidates_where_the_psf_is_broad():
    fwhms = [2.0, 4.0]
    snr = np.random.default_rng(1).uniform(4.5, 5.5, 500)
    completeness, sigmas = ideal_completeness(snr, fwhms, 1024.0**2, 0.5)
    peaks = [noise_peaks_per_frame(s, f, 1024.0**2) for s, f in zip(sigmas, fwhms, strict=True)]
    assert np.mean(peaks) == pytest.approx(0.5, rel=0.02)
    assert sigmas[1] < sigmas[0]  # fewer noise peaks under a broad PSF: a lower threshold
    # better than any one threshold for both frames with as many peaks
    grid = np.arange(4.0, 6.0, 0.001)
    common_peaks = np.mean([noise_peaks_per_frame(grid, f, 1024.0**2) for f in fwhms], axis=0)
    common = grid[np.argmin(np.abs(common_peaks - 0.5))]
    assert completeness > np.mean(norm.cdf(snr - common))


def test_threshold_for_false_rate_lets_through_only_the_allowed_false_candidates():
    false_scores = [np.array([0.95, 0.2]), np.array([]), np.array([0.99, 0.85]), np.array([0.7])]
    threshold = threshold_for_false_rate(false_scores, 0.5)  # two of four frames' worth
    passed = sum(int(np.count_nonzero(s >= threshold)) for s in false_scores)
    assert passed == 2
    assert 0.85 < threshold <= 0.95
    assert threshold_for_false_rate(false_scores, 2.0) == 0.0
    assert threshold_for_false_rate(false_scores, 0.0) > 0.99

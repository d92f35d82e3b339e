"""Simulated bogus for real/bogus training: star dipoles and stack-like pixels."""

import numpy as np
from scipy import ndimage

from imaging.gaussian import FWHM_PER_SIGMA
from training.realbogus.artefacts import add_star_dipoles
from training.realbogus.dataset import stack_like


def _star(shape=(64, 64), x=31.3, y=30.8, flux=1e4, fwhm=3.0):
    sigma = fwhm / FWHM_PER_SIGMA
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = (
        flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    )
    return image.astype(np.float32)


def test_a_star_dipole_moves_the_star_a_little_and_keeps_its_light():
    image = _star()
    before = image.copy()
    add_star_dipoles(
        image, np.random.default_rng(1), np.array([[31.3, 30.8]]), np.array([1e4]), 3.0
    )
    change = image - before
    assert abs(change.sum()) < 0.01 * 1e4  # the light moved, none appeared
    assert change.max() > 0 and change.min() < 0  # a dipole on the difference
    moved = np.hypot(*(np.array(ndimage.center_of_mass(image)) - [30.8, 31.3]))
    assert 0.05 < moved < 0.6


def test_a_star_too_close_to_the_edge_is_left_alone():
    image = _star(x=2.0, y=30.0)
    before = image.copy()
    add_star_dipoles(image, np.random.default_rng(1), np.array([[2.0, 30.0]]), np.array([1e4]), 3.0)
    assert np.array_equal(image, before)


def test_stack_like_pixels_have_correlated_noise_and_plain_ones_are_untouched():
    noise = np.random.default_rng(2).normal(0, 1, (256, 256)).astype(np.float32)
    assert np.array_equal(stack_like(noise, 0.0), noise)
    stacked = stack_like(noise, 0.8)
    neighbours = np.corrcoef(stacked[:, :-1].ravel(), stacked[:, 1:].ravel())[0, 1]
    assert neighbours > 0.5  # white noise: ~0
    assert stacked.std() < 0.5

"""Satellite trails on real and crowded skies: the real streak is counted and gives its reason;
a dense star field and a field of elongated galaxies are not trails."""

import numpy as np
import pytest

from imaging.fits_reader import read_frame
from imaging.scoring import score_frame
from imaging.trails import count_trails
from tests.quality_models import AlwaysGood
from tests.skies import star_field


def galaxy_field(seed: int, galaxies: int = 400, stars: int = 500) -> np.ndarray:
    """Stars and exponential discs seen at every inclination (axis ratios down to 0.15),
    many of them longer than a binned trail's pixel."""
    rng = np.random.default_rng(seed)
    image = star_field(shape=(1024, 1024), stars=stars, fwhm_px=3.0, seed=seed)
    yy, xx = np.mgrid[:1024, :1024]
    for _ in range(galaxies):
        x, y = rng.uniform(0, 1024, 2)
        scale, ratio, angle = rng.uniform(3, 25), rng.uniform(0.15, 1.0), rng.uniform(0, np.pi)
        reach = int(6 * scale)
        top, bottom = max(0, int(y) - reach), min(1024, int(y) + reach)
        left, right = max(0, int(x) - reach), min(1024, int(x) + reach)
        dx, dy = xx[top:bottom, left:right] - x, yy[top:bottom, left:right] - y
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        radius = np.sqrt(along**2 + (across / ratio) ** 2)
        image[top:bottom, left:right] += rng.uniform(50, 3000) * np.exp(-radius / scale)
    return image


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
def test_the_real_satellite_streak_is_counted_and_explained(real_data):
    frame = read_frame(real_data / "satellite-streak" / "long.fits")

    score = score_frame(frame, AlwaysGood(), site_id="saao")

    assert score.metrics.satellite_trails == 1
    (trail,) = [reason for reason in score.reasons if reason.reason == "artefacts"]
    assert trail.message == "satellite trails 1 exceeds the 0 limit for good frames"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dense_star_field_has_no_trails(seed):
    dense = star_field(
        shape=(1024, 1024),
        stars=15000,
        fwhm_px=3.0,
        peaks_adu=(30, 30000),
        moffat_beta=3.0,
        seed=seed,
    )

    assert count_trails(dense, saturation_adu=65535.0) == 0


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_field_of_elongated_galaxies_has_no_trails(seed):
    assert count_trails(galaxy_field(seed), saturation_adu=65535.0) == 0


def test_a_faint_trail_across_a_crowded_field_is_still_counted():
    rng = np.random.default_rng(5)
    image = star_field(shape=(1024, 1024), stars=2000, fwhm_px=3.0, moffat_beta=3.0, seed=5)
    yy, xx = np.mgrid[:1024, :1024]
    theta = np.deg2rad(rng.uniform(10, 80))
    distance = (xx - 500) * np.sin(theta) - (yy - 520) * np.cos(theta)
    image += 60.0 * np.exp(-(distance**2) / 4.5)  # 6 sigma of the sky's noise at its peak

    assert count_trails(image, saturation_adu=65535.0) == 1

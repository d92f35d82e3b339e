"""Satellite trails are counted on the pixels, bleeding columns and stars are not trails, and a
counted trail floors the verdict with its reason."""

import numpy as np
import pytest

from imaging.fits_reader import read_frame
from imaging.scoring import score_frame
from imaging.trails import count_trails
from protos import QualityLabel
from tests.quality_models import AlwaysGood
from tests.skies import observe
from training.simulator import ObservingConditions


@pytest.mark.parametrize("trails", [0, 1, 2, 3])
def test_trails_crossing_the_frame_are_counted(tmp_path, trails):
    conditions = ObservingConditions(seeing_fwhm_arcsec=1.8, satellite_trails=trails)
    frame = read_frame(observe(tmp_path, conditions, seed=11))

    assert count_trails(frame.data, frame.saturation_adu or 65535.0) == trails


def test_two_trails_crossing_in_an_x_count_as_two():
    rng = np.random.default_rng(8)
    data = rng.normal(1000.0, 10.0, (1024, 1024)).astype(np.float32)
    yy, xx = np.mgrid[:1024, :1024]
    for angle in (20.0, 110.0):  # both through the frame's centre
        theta = np.deg2rad(angle)
        distance = (xx - 512) * np.sin(theta) - (yy - 512) * np.cos(theta)
        data += 200.0 * np.exp(-(distance**2) / 4.5)

    assert count_trails(data, saturation_adu=60000.0) == 2


def test_a_bleeding_column_and_a_field_of_stars_are_not_trails():
    rng = np.random.default_rng(4)
    data = rng.normal(1000.0, 10.0, (512, 512)).astype(np.float32)
    yy, xx = np.mgrid[:512, :512]
    for x, y in rng.uniform(20, 490, (300, 2)):
        data += 500.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    data[40:480, 300] = 60000.0  # a saturated star's charge along its column

    assert count_trails(data, saturation_adu=60000.0) == 0


def test_two_trails_make_a_frame_the_model_calls_good_bad_with_the_reason(tmp_path):
    path = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8, satellite_trails=2))

    score = score_frame(read_frame(path), AlwaysGood(), site_id="la-silla")

    assert score.label == QualityLabel.BAD
    assert score.metrics.satellite_trails == 2
    (reason,) = [r for r in score.reasons if r.reason == "artefacts"]
    assert reason.message == "satellite trails 2 exceeds the 1 limit for medium frames"


def test_frames_too_small_to_count_on_are_left_to_the_model():
    small = np.random.default_rng(1).normal(1000.0, 10.0, (256, 256)).astype(np.float32)
    small[128, :] += 300.0  # a bright line right across

    assert count_trails(small, saturation_adu=65535.0) is None


class SureItIsGood(AlwaysGood):
    """A model whose float32 probabilities sum to a little over one, as rounding leaves them."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(np.array([0.6, 0.3, 0.1], dtype=np.float32), (len(batch), 1))


def test_a_verdict_floored_onto_bad_stays_a_valid_probability(tmp_path):
    path = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8, satellite_trails=2))

    score = score_frame(read_frame(path), SureItIsGood(), site_id="la-silla")

    probabilities = [score.probabilities.of(label) for label in QualityLabel]
    assert score.label == QualityLabel.BAD
    assert sum(probabilities) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    # The count's error leaves a little doubt: not 1.00 by construction.
    assert 0.95 < score.probabilities.bad == score.confidence < 1.0

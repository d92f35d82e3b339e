"""The verdict never contradicts its measurements: each contradiction reported in the "real sky"
issue, on a simulated frame that shows it, with the model answering what it answered then."""

from pathlib import Path

import numpy as np
import pytest

from imaging.fits_reader import Frame, read_frame
from imaging.scoring import score_frame
from protos import FrameScore, ModelRef, QualityLabel
from tests.quality_models import AlwaysGood
from tests.skies import FIELD, NIGHT
from training.simulator import ObservingConditions, SimCamera, simulate_frame, write_frame

SITE = "la-silla"
COARSE_CAMERA = SimCamera(width_px=1024, height_px=1024, pixel_scale_arcsec=1.2)
"""A 1.2"/px camera, where medium-seeing frames were graded good."""
FINE_CAMERA = SimCamera(width_px=1024, height_px=1024)


class Says:
    """A quality model that always answers the same probabilities."""

    def __init__(self, good: float, medium: float, bad: float) -> None:
        self.ref = ModelRef(name="quality", version="fixed")
        self.answer = np.array([good, medium, bad], dtype=np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(self.answer, (len(batch), 1))


def frame_under(
    folder: Path, conditions: ObservingConditions, camera: SimCamera, seed: int = 3
) -> Frame:
    simulated = simulate_frame(
        conditions,
        camera,
        date_obs=NIGHT,
        site_name=SITE,
        rng=np.random.default_rng(seed),
        **FIELD,
    )
    return read_frame(write_frame(simulated, folder / f"frame-{seed}.fits"))


def assert_consistent(score: FrameScore) -> None:
    """What the issue asks of every verdict."""
    if score.label == QualityLabel.GOOD:
        assert score.reasons == [], score.reasons
    else:
        assert score.reasons, f"{score.label} with no reason"
    assert score.confidence == pytest.approx(score.probabilities.of(score.label))


def test_medium_seeing_on_a_coarse_camera_is_not_graded_good(tmp_path):
    conditions = ObservingConditions(seeing_fwhm_arcsec=3.2)
    frame = frame_under(tmp_path, conditions, COARSE_CAMERA)

    score = score_frame(frame, AlwaysGood(), site_id=SITE)

    assert score.label == QualityLabel.MEDIUM
    (seeing,) = [reason for reason in score.reasons if reason.reason == "seeing"]
    assert seeing.threshold == 2.5
    assert seeing.value == pytest.approx(3.2, rel=0.08)
    assert score.confidence < 1.0
    assert_consistent(score)


def test_bad_seeing_makes_a_frame_bad_whatever_the_model_says(tmp_path):
    frame = frame_under(tmp_path, ObservingConditions(seeing_fwhm_arcsec=5.2), FINE_CAMERA)

    score = score_frame(frame, Says(0.05, 0.9, 0.05), site_id=SITE)

    assert score.label == QualityLabel.BAD
    (seeing,) = [reason for reason in score.reasons if reason.reason == "seeing"]
    assert seeing.threshold == 4.0
    assert_consistent(score)


def test_a_good_frame_shows_no_reason_and_no_value_beyond_a_good_limit(tmp_path):
    frame = frame_under(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.4), COARSE_CAMERA)

    score = score_frame(frame, AlwaysGood(), site_id=SITE)

    assert score.label == QualityLabel.GOOD
    assert score.metrics.fwhm_arcsec is not None and score.metrics.fwhm_arcsec < 2.5
    assert_consistent(score)


def test_defocus_is_measured_and_gives_the_focus_reason(tmp_path):
    conditions = ObservingConditions(seeing_fwhm_arcsec=1.4, defocus_arcsec=7.0)
    frame = frame_under(tmp_path, conditions, FINE_CAMERA)

    score = score_frame(frame, AlwaysGood(), site_id=SITE)

    assert score.label == QualityLabel.BAD
    (focus,) = [reason for reason in score.reasons if reason.reason == "focus"]
    assert focus.threshold == 4.0
    assert focus.value == pytest.approx(7.0, rel=0.2)
    assert_consistent(score)


def test_a_shallow_frame_the_model_calls_bad_says_why(tmp_path):
    shallow = SimCamera(width_px=512, height_px=512, exptime_s=5.0)
    frame = frame_under(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8), shallow)

    score = score_frame(frame, Says(0.02, 0.08, 0.9), site_id=SITE)

    assert score.label == QualityLabel.BAD
    assert any("quality model" in reason.message for reason in score.reasons)
    assert_consistent(score)


def test_a_floored_verdict_is_confident_but_not_certain_by_construction(tmp_path):
    conditions = ObservingConditions(seeing_fwhm_arcsec=1.8, satellite_trails=2)
    frame = frame_under(tmp_path, conditions, FINE_CAMERA, seed=11)

    score = score_frame(frame, Says(0.6, 0.3, 0.1), site_id=SITE)

    assert score.label == QualityLabel.BAD
    assert 0.9 < score.confidence < 1.0
    assert_consistent(score)

"""Photometric quality: transparency from catalogue stars and sky brightness from the background,
measured on simulated frames against the camera's calibration, and the verdict they floor."""

import json
from pathlib import Path

import numpy as np
import pytest

from imaging.catalogue import CatalogueError, catalogue_file_name, read_catalogue
from imaging.fits_reader import read_frame
from imaging.metrics import global_background
from imaging.photometry import PhotometricCalibration, PhotometryError, measure_photometry
from imaging.scoring import score_frame
from imaging.verdict import floored_probabilities
from protos import QualityLabel
from tests.quality_models import AlwaysGood
from tests.skies import CAMERA, observe
from training.simulator import ObservingConditions
from training.simulator.catalogue import camera_calibration


def measure(path: Path, calibration: PhotometricCalibration):
    frame = read_frame(path)
    return measure_photometry(
        frame,
        background_adu=global_background(frame.data)[0],
        pixel_scale_arcsec=frame.pixel_scale_arcsec,
        saturation_adu=frame.saturation_adu or 65535.0,
        calibration=calibration,
    )


@pytest.mark.parametrize("transparency", [0.95, 0.6, 0.25])
def test_transparency_is_the_starlight_that_came_through(tmp_path, transparency):
    conditions = ObservingConditions(seeing_fwhm_arcsec=1.8, transparency=transparency)
    path = observe(tmp_path, conditions)

    measured = measure(path, camera_calibration(CAMERA, tmp_path / "catalogues"))

    assert measured.transparency == pytest.approx(transparency, rel=0.08)
    assert measured.stars >= 20
    expected_zero_point = CAMERA.zero_point_mag + 2.5 * np.log10(transparency)
    airmass = float(read_frame(path).header["AIRMASS"])
    expected_zero_point -= CAMERA.extinction_mag_per_airmass * (airmass - 1.0)
    assert measured.zero_point_mag == pytest.approx(expected_zero_point, abs=0.09)


def test_trailed_and_defocused_stars_are_measured_whole(tmp_path):
    calibration = camera_calibration(CAMERA, tmp_path / "catalogues")
    trailed = ObservingConditions(seeing_fwhm_arcsec=1.5, trailing_arcsec=4.0)
    donuts = ObservingConditions(seeing_fwhm_arcsec=1.5, defocus_arcsec=3.0)

    for seed, conditions in enumerate((trailed, donuts), start=2):
        measured = measure(observe(tmp_path, conditions, seed), calibration)
        assert measured.transparency == pytest.approx(1.0, rel=0.08)


@pytest.mark.parametrize("sky_mag", [21.5, 18.5, 17.0])
def test_sky_brightness_follows_from_the_calibrated_background(tmp_path, sky_mag):
    path = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=2.0, sky_mag_arcsec2=sky_mag))

    measured = measure(path, camera_calibration(CAMERA, None))

    assert measured.sky_brightness_mag_arcsec2 == pytest.approx(sky_mag, abs=0.06)
    assert measured.transparency is None
    assert measured.note == "no catalogue folder configured"


def test_a_field_without_catalogue_or_with_a_broken_one_has_unknown_transparency(tmp_path):
    path = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=2.0))
    catalogue = tmp_path / "catalogues" / catalogue_file_name(read_frame(path).header["OBJECT"])
    calibration = camera_calibration(CAMERA, tmp_path / "catalogues")
    catalogue.write_bytes(b"not a FITS table")

    broken = measure(path, calibration)
    catalogue.unlink()
    missing = measure(path, calibration)

    assert broken.transparency is None and "catalogue unusable" in (broken.note or "")
    assert str(catalogue) in (broken.note or "")
    assert missing.transparency is None and "no catalogue for field" in (missing.note or "")
    assert missing.sky_brightness_mag_arcsec2 is not None
    with pytest.raises(CatalogueError, match="not a readable FITS catalogue"):
        read_catalogue(tmp_path / "frame-1.truth.json")


def test_frames_in_another_filter_are_not_graded_by_photometry(tmp_path):
    path = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=2.0))
    calibration = camera_calibration(CAMERA, tmp_path / "catalogues").model_copy(
        update={"filter_name": "g"}
    )

    measured = measure(path, calibration)

    assert measured.transparency is None and measured.sky_brightness_mag_arcsec2 is None
    assert measured.note == "frame filter 'r' is not the calibrated 'g'"


def test_calibration_file_resolves_its_catalogue_folder_and_rejects_nonsense(tmp_path):
    good = tmp_path / "photometry.json"
    good.write_text(json.dumps({"zero_point_mag": 24.2, "catalogue_dir": "catalogues"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"zero_point_mag": "bright"}))

    assert PhotometricCalibration.load(good).catalogue_dir == tmp_path / "catalogues"
    with pytest.raises(PhotometryError, match=r"(?s)bad\.json.*zero_point_mag"):
        PhotometricCalibration.load(bad)


def test_thin_cloud_makes_a_frame_the_model_calls_good_medium_with_the_reason(tmp_path):
    cloudy = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8, transparency=0.6))
    calibration = camera_calibration(CAMERA, tmp_path / "catalogues")

    score = score_frame(
        read_frame(cloudy), AlwaysGood(), site_id="la-silla", photometry=calibration
    )
    unscored = score_frame(read_frame(cloudy), AlwaysGood(), site_id="la-silla")

    assert score.label == QualityLabel.MEDIUM
    assert 0.9 < score.confidence < 1.0  # the measured grade, not 1.00 by construction
    assert [reason.reason for reason in score.reasons] == ["transparency"]
    assert score.metrics.transparency == pytest.approx(0.6, rel=0.08)
    assert score.metrics.sky_brightness_mag_arcsec2 == pytest.approx(21.0, abs=0.06)
    assert unscored.label == QualityLabel.GOOD and unscored.metrics.transparency is None


def test_a_floor_moves_the_better_classes_onto_it():
    probabilities = np.array([0.7, 0.2, 0.1])

    np.testing.assert_allclose(
        floored_probabilities(probabilities, QualityLabel.MEDIUM), [0.0, 0.9, 0.1]
    )
    np.testing.assert_allclose(floored_probabilities(probabilities, QualityLabel.BAD), [0, 0, 1])
    np.testing.assert_allclose(
        floored_probabilities(probabilities, QualityLabel.GOOD), probabilities
    )


def test_an_agent_refuses_to_start_with_an_unusable_calibration(tmp_path):
    from site_agent.agent import SiteAgent
    from site_agent.settings import SiteAgentSettings

    calibration = tmp_path / "photometry.toml"
    calibration.write_text("zero_point_mag = 24.2\nbias = 1000\n")  # "bias" is not a field
    settings = SiteAgentSettings(
        watch_dir=tmp_path / "incoming", work_dir=tmp_path / "work", photometry_file=calibration
    )

    with pytest.raises(PhotometryError, match=r"(?s)photometry\.toml.*bias"):
        SiteAgent(settings)

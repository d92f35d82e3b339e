"""What a frame is: the type keywords in the spellings cameras write, the pixels when the header
is silent (a star field is never a flat), and images that are not a telescope's view of the
night sky (a solar WCS, an all-sky field, a difference image) refused "not a sky frame: ...",
by `skyfleet score` and by a site agent, which quarantines them."""

import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from imaging.fits_reader import read_frame
from imaging.frame_kind import NOT_SKY_PREFIX, FrameKind, classify_frame, header_kind
from imaging.quality_model import write_model
from protos import QualityLabel, RejectReason
from site_agent.quarantine import REASON_SUFFIX
from skyfleet.cli import app
from tests.calibration_frames import Camera
from tests.conftest import REAL_DATA
from tests.quality_models import TinyQualityNet
from tests.site_agents import (
    NIGHT,
    SMALL_CAMERA,
    running_agent,
    simulated_frames,
    site_settings,
)
from tests.site_topology import frame_messages_at_hub
from tests.skies import star_field
from training.simulator.dataset import simulate_labelled_frame

DECAM = REAL_DATA / "decam-sfft"


@pytest.mark.parametrize(
    ("keyword", "value", "kind"),
    [
        ("IMAGETYP", "Bias Frame", FrameKind.BIAS),
        ("IMAGETYP", "ZERO", FrameKind.BIAS),
        ("IMAGETYP", "Offset", FrameKind.BIAS),
        ("IMAGETYP", "Dark Frame", FrameKind.DARK),
        ("OBSTYPE", "dark", FrameKind.DARK),
        ("IMAGETYP", "Flat Field", FrameKind.FLAT),
        ("IMAGETYP", "FLAT", FrameKind.FLAT),
        ("OBSTYPE", "SKYFLAT", FrameKind.FLAT),
        ("OBSTYPE", "dome flat", FrameKind.FLAT),
        ("HIERARCH ESO DPR TYPE", "FLAT,LAMP", FrameKind.FLAT),
        ("IMAGETYP", "Light Frame", FrameKind.LIGHT),
        ("IMAGETYP", "OBJECT", FrameKind.LIGHT),
        ("IMAGETYP", "SCIENCE", FrameKind.LIGHT),
        ("OBSTYPE", "EXPOSE", FrameKind.LIGHT),
    ],
)
def test_the_type_keywords_are_read_in_the_spellings_cameras_write(keyword, value, kind):
    header = fits.Header()
    header[keyword] = value

    said = header_kind(header)

    assert said is not None and said.kind is kind
    assert value in said.evidence


def test_a_header_that_says_nothing_known_leaves_it_to_the_pixels():
    header = fits.Header()
    header["IMAGETYP"] = "whatever"
    assert header_kind(header) is None


def _frame(tmp_path: Path, data: np.ndarray, name: str = "frame.fits", **cards: object):
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    path = tmp_path / name
    fits.PrimaryHDU(np.asarray(data), header=header).writeto(path, overwrite=True)
    return read_frame(path)


def test_a_silent_zero_second_frame_of_read_noise_is_a_bias(tmp_path):
    frame = _frame(tmp_path, Camera().bias_frame().astype(np.uint16), EXPTIME=0.0)

    kind = classify_frame(frame)

    assert kind.kind is FrameKind.BIAS and kind.is_calibration
    assert kind.describe().startswith("calibration frame: bias (EXPTIME = 0")


def test_a_silent_bright_starless_frame_is_a_flat(tmp_path):
    data = Camera().flat_frame(level_adu=30_000.0).astype(np.uint16)
    frame = _frame(tmp_path, data, EXPTIME=3.0)

    assert classify_frame(frame).kind is FrameKind.FLAT


def test_a_star_field_as_bright_as_a_flat_is_never_called_one(tmp_path):
    stars = star_field(shape=(256, 256), stars=40, peaks_adu=(200.0, 2000.0), seed=3)
    frame = _frame(tmp_path, (stars + 25_000.0).astype(np.uint16), EXPTIME=3.0)

    kind = classify_frame(frame)

    assert kind.kind is FrameKind.LIGHT and kind.not_sky is None


def test_a_zero_second_frame_with_stars_is_a_light_frame_not_a_bias(tmp_path):
    stars = star_field(shape=(256, 256), stars=40, seed=4)
    frame = _frame(tmp_path, stars.astype(np.uint16), EXPTIME=0.0)

    assert classify_frame(frame).kind is FrameKind.LIGHT


@pytest.mark.parametrize("label", list(QualityLabel))
def test_simulated_night_frames_of_every_grade_are_sky_frames(tmp_path, label):
    for index in range(3):
        simulated = simulate_labelled_frame(
            label, SMALL_CAMERA, seed=7, index=index, date_obs=NIGHT
        )
        header = simulated.header.copy()
        del header["IMAGETYP"]  # the pixels alone must not make a calibration frame of it
        path = tmp_path / f"{label.value}-{index}.fits"
        fits.PrimaryHDU(simulated.data, header=header).writeto(path)
        kind = classify_frame(read_frame(path))
        assert kind.kind is FrameKind.LIGHT and kind.not_sky is None, kind.describe()


def _solar_header() -> fits.Header:
    header = fits.Header()
    header["IMAGETYP"] = "LIGHT"
    header["CTYPE1"], header["CTYPE2"] = "HPLN-TAN", "HPLT-TAN"
    header["CUNIT1"], header["CUNIT2"] = "arcsec", "arcsec"
    header["CDELT1"], header["CDELT2"] = 0.6, 0.6
    header["CRPIX1"], header["CRPIX2"] = 64.5, 64.5
    header["CRVAL1"], header["CRVAL2"] = 0.0, 0.0
    header["DSUN_OBS"] = 1.496e11
    return header


def _solar_frame_file(path: Path) -> Path:
    disc = 1000.0 + np.random.default_rng(0).normal(0.0, 20.0, (128, 128))
    fits.PrimaryHDU(disc.astype(np.float32), header=_solar_header()).writeto(path)
    return path


def test_a_helioprojective_frame_is_not_a_sky_frame(tmp_path):
    kind = classify_frame(read_frame(_solar_frame_file(tmp_path / "sun.fits")))

    assert kind.describe().startswith(NOT_SKY_PREFIX)
    assert "HPLN-TAN" in kind.describe() and "solar" in kind.describe()


def test_an_all_sky_frame_is_not_a_sky_frame(tmp_path):
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---ZEA", "DEC--ZEA"
    header["CDELT1"], header["CDELT2"] = -0.1, 0.1
    header["CRPIX1"], header["CRPIX2"] = 1024.5, 1024.5
    header["CRVAL1"], header["CRVAL2"] = 120.0, -30.0
    sky = np.random.default_rng(1).normal(3000.0, 30.0, (2048, 2048)).astype(np.float32)
    path = tmp_path / "allsky.fits"
    fits.PrimaryHDU(sky, header=header).writeto(path)

    kind = classify_frame(read_frame(path))

    assert kind.describe().startswith(NOT_SKY_PREFIX + "an all-sky image (ZEA projection")


def test_the_published_decam_difference_is_not_a_sky_frame_but_its_exposures_are():
    difference = classify_frame(read_frame(DECAM / "FinalDifference.fits"))
    assert difference.describe().startswith(NOT_SKY_PREFIX + "a difference image")
    for path in sorted(DECAM.glob("*OBS*.fits")):  # sky-subtracted, at zero too: stars only
        kind = classify_frame(read_frame(path))
        assert kind.kind is FrameKind.LIGHT and kind.not_sky is None, (path.name, kind)


def test_a_type_keyword_naming_a_difference_is_not_a_sky_frame(tmp_path):
    frame = _frame(tmp_path, Camera().sky_frame(30.0, []), IMAGETYP="DIFFERENCE")
    assert classify_frame(frame).not_sky == "a difference image (IMAGETYP='DIFFERENCE')"


def test_the_real_raw_ccd_frame_is_a_light_frame(real_data):
    kind = classify_frame(read_frame(real_data / "raw-ccd" / "a8280271.fits"))
    assert kind.kind is FrameKind.LIGHT and kind.not_sky is None
    assert kind.evidence == "IMAGETYP='object'"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    version_dir = tmp_path / "models" / "quality" / "1"
    write_model(TinyQualityNet(), version_dir, name="tiny-quality", version="1")
    return version_dir.parent


def test_skyfleet_score_names_calibration_and_non_sky_frames_instead_of_grading_them(
    tmp_path, model_dir
):
    camera = Camera()
    bias = camera.write(tmp_path / "bias.fits", camera.bias_frame(), IMAGETYP="ZERO")
    sun = _solar_frame_file(tmp_path / "sun.fits")
    runner = CliRunner()

    result = runner.invoke(app, ["score", "--json", "--model", str(model_dir), str(bias), str(sun)])

    assert result.exit_code == 1  # the solar frame is refused; the bias is no failure
    assert result.stdout == ""  # no grade for either
    assert "calibration frame: bias (IMAGETYP='ZERO')" in result.stderr
    assert "sun.fits: not a sky frame: the WCS is not on the sky" in result.stderr


async def test_a_site_refuses_a_solar_frame_and_quarantines_it(
    tmp_path, nats_server, fleet_bus, caplog
):
    caplog.set_level(logging.INFO)
    _, js = fleet_bus
    settings = site_settings(
        tmp_path,
        "solo",
        None,
        nats_url=nats_server.url,
        hub_js_domain=None,
        search_transients=False,
    )
    async with running_agent(settings):
        _solar_frame_file(settings.watch_dir / "sun.fits")
        good = simulated_frames(settings.watch_dir, [QualityLabel.GOOD])
        scores, rejections = await frame_messages_at_hub(js, 2, timeout_s=60)

    (rejected,) = rejections
    assert rejected.file_name == "sun.fits"
    assert rejected.reason is RejectReason.NO_IMAGE_DATA
    assert "not a sky frame: the WCS is not on the sky (CTYPE1='HPLN-TAN'" in rejected.message
    assert (settings.quarantine_dir / "sun.fits").is_file()
    assert (settings.quarantine_dir / ("sun.fits" + REASON_SUFFIX)).is_file()
    assert [score.frame.file_name for score in scores] == [good[0][0].name]

"""`skyfleet simulate` writes labelled folders or pairs, and refuses bad options in one line."""

import json

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from skyfleet.cli import app

runner = CliRunner()
SMALL_FRAME = ["--width", "256", "--height", "192"]


def test_writes_good_medium_and_bad_folders_of_frames_with_their_truth(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--count", "2", *SMALL_FRAME])
    assert result.exit_code == 0, result.output
    for label in ("good", "medium", "bad"):
        frames = sorted((tmp_path / label).glob("*.fits"))
        assert len(frames) == 2
        for frame in frames:
            assert fits.getdata(frame).shape == (192, 256)
            assert fits.getheader(frame)["SIMLABEL"] == label
            truth = json.loads(frame.with_name(f"{frame.stem}.truth.json").read_text())
            assert truth["label"] == label
    assert "total" in result.output and "6" in result.output


def test_one_label_writes_only_that_folder(tmp_path):
    args = ["simulate", "--out", str(tmp_path), "--count", "1", "--label", "bad", *SMALL_FRAME]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # One label folder, beside the fields' catalogues and the camera's calibration.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "catalogues", "photometry.json"]
    assert len(list((tmp_path / "catalogues").glob("*.fits"))) == 1


def test_same_seed_writes_the_same_pixels(tmp_path):
    for run in ("a", "b"):
        args = ["simulate", "--out", str(tmp_path / run), "--count", "1", "--seed", "4"]
        assert runner.invoke(app, [*args, *SMALL_FRAME]).exit_code == 0
    for first in sorted((tmp_path / "a").rglob("*.fits")):
        second = tmp_path / "b" / first.relative_to(tmp_path / "a")
        np.testing.assert_array_equal(fits.getdata(first), fits.getdata(second))


def test_pair_writes_reference_and_new_with_the_transients(tmp_path):
    args = ["simulate", "--out", str(tmp_path), "--pair", "--count", "1", "--transients", "3"]
    result = runner.invoke(app, [*args, "--hosted", "1", *SMALL_FRAME])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "pair-000"
    assert fits.getheader(folder / "reference.fits")["SIMNTRAN"] == 0
    assert fits.getheader(folder / "new.fits")["SIMNTRAN"] == 3
    truth = json.loads((folder / "new.truth.json").read_text())
    assert len(truth["transients"]) == 3
    assert {"ra_deg", "dec_deg", "x_px", "y_px", "snr"} <= set(truth["transients"][0])
    assert all(t["host_offset_arcsec"] is not None for t in truth["transients"])


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--width", "10"], "--width: input should be greater than or equal to 64, got 10"),
        (["--height", "63"], "--height: input should be greater than or equal to 64"),
        (["--exptime", "0"], "--exptime: input should be greater than 0"),
        (["--label", "great"], "--label must be one of"),
        (["--count", "0"], "--count must be at least 1"),
        (["--pixel-scale", "-1"], "--pixel-scale"),
        (["--site", "La Silla"], "--site"),
        (["--pair", "--hosted", "1.5"], "--hosted must be a fraction from 0 to 1, got 1.5"),
    ],
)
def test_bad_options_fail_with_one_clear_line_and_write_nothing(tmp_path, options, complaint):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "out"), *options])
    assert result.exit_code == 2
    assert complaint in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()

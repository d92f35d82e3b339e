"""`skyfleet score`: a table or FrameScore JSON lines for every file, bad files named on stderr,
and an exit status that says whether every file could be scored."""

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imaging.quality_model import write_model
from protos import FrameScore
from skyfleet.cli import app
from tests.conftest import REAL_DATA, REPO_ROOT, SKYFLEET
from tests.quality_models import TinyQualityNet
from tests.skies import CAMERA, observe, observe_field

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
STREAK = REAL_DATA / "satellite-streak" / "long.fits"
SEP_IMAGE = REAL_DATA / "sep" / "image.fits"
RAW_CCD = REAL_DATA / "raw-ccd" / "a8280271.fits"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    version_dir = tmp_path / "models" / "quality" / "1"
    write_model(TinyQualityNet(), version_dir, name="tiny-quality", version="1")
    return version_dir.parent


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "half-written.fits"
    path.write_bytes(STREAK.read_bytes()[:10_000])
    return path


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
def test_json_prints_one_frame_score_per_file(model_dir):
    difference = REAL_DATA / "decam-sfft" / "FinalDifference.fits"  # refused: not sky
    files = sorted(set(REAL_DATA.glob("*/*.fits")) - {difference})

    result = runner.invoke(app, ["score", "--json", "--model", str(model_dir), *map(str, files)])

    assert result.exit_code == 0, result.output
    scores = [FrameScore.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [score.frame.file_name for score in scores] == [path.name for path in files]
    assert {score.site_id for score in scores} == {"local"}
    assert {score.model.name for score in scores} == {"tiny-quality"}


def test_table_shows_verdict_metrics_and_reasons(model_dir):
    result = runner.invoke(app, ["score", "--model", str(model_dir), str(STREAK)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "Frame quality (model tiny-quality 1)" in result.stdout
    assert "long.fits" in result.stdout
    assert any(label in result.stdout for label in ("good", "medium", "bad"))
    # The streak frame is at 3 arcsec/px: its stars are far wider than the seeing limit.
    assert "long.fits: seeing" in result.stdout
    assert "arcsec limit for medium frames" in result.stdout


def test_options_reach_the_scores(model_dir):
    result = runner.invoke(
        app,
        [
            "score",
            "--json",
            "--model",
            str(model_dir),
            "--site-id",
            "la-silla",
            "--pixel-scale",
            "0.4",
            str(SEP_IMAGE),
        ],
    )

    assert result.exit_code == 0, result.output
    score = FrameScore.model_validate_json(result.stdout)
    assert score.site_id == "la-silla"
    assert score.metrics.fwhm_arcsec is not None  # the frame has no WCS: the scale came from us


def test_bad_file_is_named_on_stderr_and_the_others_are_still_scored(model_dir, broken_file):
    result = runner.invoke(
        app,
        ["score", "--json", "--model", str(model_dir), str(broken_file), str(RAW_CCD)],
    )

    assert result.exit_code == 1
    assert f"{broken_file}: truncated" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    (score,) = [FrameScore.model_validate_json(line) for line in result.stdout.splitlines()]
    assert score.frame.file_name == RAW_CCD.name


def test_missing_model_is_reported_and_nothing_is_scored(tmp_path):
    result = runner.invoke(app, ["score", "--model", str(tmp_path), str(RAW_CCD)])

    assert result.exit_code == 2
    assert "no model.pt" in result.stderr
    assert result.stdout == ""


def test_invalid_site_id_is_refused(model_dir):
    result = runner.invoke(
        app, ["score", "--model", str(model_dir), "--site-id", "La Silla", str(RAW_CCD)]
    )

    assert result.exit_code == 2
    assert "--site-id" in result.stderr


def test_installed_command_exits_non_zero_when_a_file_fails(model_dir, broken_file):
    completed = subprocess.run(
        [
            str(SKYFLEET),
            "score",
            "--model",
            str(model_dir),
            str(broken_file),
            str(RAW_CCD),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )

    assert completed.returncode == 1
    assert "half-written.fits" in completed.stderr and "truncated" in completed.stderr
    assert RAW_CCD.name in completed.stdout


def test_a_calibration_adds_transparency_and_sky_brightness_to_the_table(model_dir, tmp_path):
    from training.simulator import ObservingConditions
    from training.simulator.catalogue import CATALOGUE_DIR_NAME, write_calibration

    frame = observe(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8, transparency=0.6))
    calibration = write_calibration(CAMERA, tmp_path / "photometry.json", CATALOGUE_DIR_NAME)

    result = runner.invoke(
        app,
        ["score", "--model", str(model_dir), "--photometry", str(calibration), str(frame)],
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    assert "transp." in result.stdout and "mag/″²" in result.stdout
    (reason,) = [line for line in result.stdout.splitlines() if line.startswith(frame.name)]
    measured = float(reason.split()[2])
    assert measured == pytest.approx(0.6, rel=0.08)
    assert reason.endswith("is below the 0.8 limit for good frames")


def test_field_references_give_transparency_without_a_catalogue(model_dir, tmp_path):
    from training.simulator import ObservingConditions

    frames = [
        observe_field(tmp_path, ObservingConditions(seeing_fwhm_arcsec=1.8, transparency=t), seed)
        for seed, t in ((1, 1.0), (2, 0.6))
    ]
    references = tmp_path / "field-references"

    result = runner.invoke(
        app,
        ["score", "--model", str(model_dir), "--json", "--field-references", str(references)]
        + [str(frame) for frame in frames],
    )

    assert result.exit_code == 0, result.output
    clear, cloudy = (FrameScore.model_validate_json(line) for line in result.stdout.splitlines())
    assert clear.metrics.transparency == 1.0
    assert cloudy.metrics.transparency == pytest.approx(0.6, rel=0.08)
    assert cloudy.metrics.transparency_reference == "site_reference"
    assert any(path.suffix == ".fits" for path in references.iterdir())


def test_an_unusable_calibration_is_named_and_nothing_is_scored(model_dir, tmp_path):
    calibration = tmp_path / "photometry.json"
    calibration.write_text('{"zero_point_mag": 99}')

    result = runner.invoke(
        app, ["score", "--model", str(model_dir), "--photometry", str(calibration), str(STREAK)]
    )

    assert result.exit_code == 2
    assert "photometry.json: not a usable photometric calibration" in result.stderr
    assert result.stdout == ""

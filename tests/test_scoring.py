"""Scoring frames: the verified model loader, the FrameScore of a frame with its metrics and
physical reasons, and batches of files where a bad file never stops the others."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from torch import nn

from imaging.criteria import frame_criteria
from imaging.fits_reader import read_frame
from imaging.metrics import measure_frame
from imaging.preprocess import preprocess_frame
from imaging.quality_model import (
    MANIFEST_FILE,
    MODEL_FILE,
    ModelLoadError,
    QualityModel,
    write_model,
)
from imaging.quality_thresholds import Limit, QualityThresholds
from imaging.scoring import score_files, score_frame
from imaging.verdict import explain_quality, judge
from protos import (
    FrameRejected,
    FrameScore,
    ImageMetrics,
    QualityLabel,
    RejectReason,
    stable_message_id,
)
from tests.conftest import REAL_DATA
from tests.quality_models import TinyQualityNet
from tests.skies import sky_wcs, star_field

REAL_DIFFERENCE = REAL_DATA / "decam-sfft" / "FinalDifference.fits"
REAL_FRAMES = sorted(set(REAL_DATA.glob("*/*.fits")) - {REAL_DIFFERENCE})
"""Every real sky frame; the published DECam difference image is not one (it is refused)."""
SITE = "la-silla"


class SoftmaxNet(nn.Module):
    """The tiny network exported with its softmax inside."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = TinyQualityNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model version folder holding a tiny TorchScript model and its manifest."""
    version_dir = tmp_path / "model" / "1"
    write_model(TinyQualityNet(), version_dir, name="tiny-quality", version="1")
    return version_dir


@pytest.fixture
def model(model_dir: Path) -> QualityModel:
    return QualityModel.load(model_dir)


def write_star_frame(path: Path, fwhm_px: float = 4.0, pixel_scale_arcsec: float = 0.5) -> Path:
    height, width = 512, 512
    header = sky_wcs(width, height).to_header()
    header["CDELT1"], header["CDELT2"] = -pixel_scale_arcsec / 3600, pixel_scale_arcsec / 3600
    header["SATURATE"] = 60000.0
    header["DATE-OBS"] = "2026-11-24T03:15:00"
    image = star_field((height, width), stars=80, fwhm_px=fwhm_px, seed=7)
    fits.PrimaryHDU(image, header).writeto(path)
    return path


# --- the model --------------------------------------------------------------------------------


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # torch.jit.load, used here as a reference
def test_loaded_model_gives_the_softmax_of_the_network(model, model_dir):
    batch = np.random.default_rng(0).normal(size=(3, 1, 128, 128)).astype(np.float32)
    network = torch.jit.load(str(model_dir / MODEL_FILE))

    probabilities = model.predict(batch)

    expected = torch.softmax(network(torch.from_numpy(batch)), dim=1).detach().numpy()
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)


def test_model_exported_with_probabilities_is_not_softmaxed_twice(tmp_path):
    write_model(SoftmaxNet(), tmp_path, name="soft", version="1", outputs="probabilities")
    batch = np.zeros((1, 1, 128, 128), np.float32)

    probabilities = QualityModel.load(tmp_path).predict(batch)

    np.testing.assert_allclose(probabilities, SoftmaxNet()(torch.from_numpy(batch)).detach())


def test_repository_in_triton_layout_loads_its_highest_version(tmp_path):
    for version in ("1", "2", "10"):
        write_model(TinyQualityNet(), tmp_path / version, name="quality", version=version)
    (tmp_path / "config.pbtxt").write_text('name: "quality"\n')

    model = QualityModel.load(tmp_path)

    assert model.ref.version == "10"
    assert model.ref.sha256 == json.loads((tmp_path / "10" / MANIFEST_FILE).read_text())["sha256"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, to swap the file
def test_model_whose_file_does_not_match_the_manifest_is_refused(model_dir):
    torch.jit.script(TinyQualityNet(seed=1)).save(str(model_dir / MODEL_FILE))

    with pytest.raises(ModelLoadError, match=r"sha256 \w+ does not match the manifest"):
        QualityModel.load(model_dir)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("preprocess_version", "seed-zoom-0", "expects preprocessing 'seed-zoom-0'"),
        ("class_names", ["bad", "medium", "good"], "class names must be"),
        ("input_shape", [1, 64, 64], "input shape must be"),
    ],
)
def test_model_for_another_contract_is_refused(model_dir, field, value, words):
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    manifest[field] = value
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(ModelLoadError, match=words):
        QualityModel.load(model_dir)


def test_missing_model_says_where_it_looked(tmp_path):
    with pytest.raises(ModelLoadError, match=f"{tmp_path}: no model.pt"):
        QualityModel.load(tmp_path)


def test_batch_of_the_wrong_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"\[N, 1, 128, 128\]"):
        model.predict(np.zeros((1, 128, 128), np.float32))


# --- one frame --------------------------------------------------------------------------------


def test_frame_score_carries_the_verdict_metrics_and_identity(tmp_path, model):
    frame = read_frame(write_star_frame(tmp_path / "night-0001.fits"))

    score = score_frame(frame, model, site_id=SITE)

    model_says = model.predict(preprocess_frame(frame.data)[np.newaxis])[0]
    measured = measure_frame(frame.data, pixel_scale_arcsec=0.5, saturation_adu=60000.0)
    verdict = judge(frame_criteria(score.metrics, measured.psf, 0.5), model_says)
    probabilities = [score.probabilities.of(label) for label in QualityLabel]
    np.testing.assert_allclose(probabilities, verdict.probabilities, atol=1e-9)
    assert score.label == verdict.label
    assert score.reasons == list(verdict.reasons)
    assert score.confidence == pytest.approx(verdict.confidence)
    assert score.message_id == stable_message_id(FrameScore.KIND, SITE, frame.identity.sha256)
    assert score.frame == frame.identity
    assert score.model == model.ref
    assert score.metrics.fwhm_arcsec == pytest.approx(2.0, rel=0.06)  # 4 px at 0.5"/px (WCS)
    assert score.processing_ms > 0
    assert FrameScore.model_validate_json(score.model_dump_json()) == score


def test_given_pixel_scale_overrides_the_wcs(tmp_path, model):
    frame = read_frame(write_star_frame(tmp_path / "frame.fits"))

    score = score_frame(frame, model, site_id=SITE, pixel_scale_arcsec=1.0)

    assert score.metrics.fwhm_arcsec == pytest.approx(4.0, rel=0.06)


def test_frame_with_poor_seeing_says_so_in_its_reasons(tmp_path, model):
    frame = read_frame(write_star_frame(tmp_path / "blurred.fits", fwhm_px=6.4))

    score = score_frame(frame, model, site_id=SITE)

    seeing = [reason for reason in score.reasons if reason.reason == "seeing"]
    assert len(seeing) == 1
    assert seeing[0].value == score.metrics.fwhm_arcsec
    assert seeing[0].threshold == 2.5
    assert seeing[0].message.startswith("seeing 3.")
    assert seeing[0].message.endswith("exceeds the 2.5 arcsec limit for good frames")


# --- the reasons ------------------------------------------------------------------------------


def metrics(**changes) -> ImageMetrics:
    good = {
        "background_adu": 1000.0,
        "background_rms_adu": 10.0,
        "fwhm_arcsec": 1.8,
        "ellipticity": 0.1,
        "source_count": 500,
        "saturated_fraction": 0.0001,
        "transparency": 0.95,
    }
    return ImageMetrics(**(good | changes))


def test_a_good_frame_has_no_reasons():
    assert explain_quality(metrics(sky_brightness_mag_arcsec2=21.0)) == []


def test_medium_seeing_is_judged_against_the_good_limit():
    (reason,) = explain_quality(metrics(fwhm_arcsec=3.4))

    assert (reason.reason, reason.value, reason.threshold, reason.unit) == (
        "seeing",
        3.4,
        2.5,
        "arcsec",
    )
    assert reason.message == "seeing 3.4 arcsec exceeds the 2.5 arcsec limit for good frames"


def test_bad_values_are_judged_against_the_bad_limit():
    reasons = explain_quality(
        metrics(
            ellipticity=0.6,
            transparency=0.3,
            saturated_fraction=0.02,
            sky_brightness_mag_arcsec2=17.0,
        )
    )

    assert [(r.reason, r.threshold) for r in reasons] == [
        ("trailing", 0.5),
        ("transparency", 0.4),
        ("saturation", 0.01),
        ("background", 17.5),
    ]
    assert reasons[1].message == "transparency 0.3 ± 0.03 is below the 0.4 limit for medium frames"
    assert "brighter than the 17.5 mag/arcsec2 limit" in reasons[3].message


def test_unknown_metrics_give_no_reasons():
    unknown = metrics(fwhm_arcsec=None, ellipticity=None, transparency=None)

    assert explain_quality(unknown) == []


def test_reasons_follow_the_thresholds_they_are_given():
    strict = QualityThresholds(seeing=Limit(good=1.5, bad=2.0, unit="arcsec"))

    (reason,) = explain_quality(metrics(fwhm_arcsec=1.8), thresholds=strict)

    assert reason.threshold == 1.5


# --- batches of files -------------------------------------------------------------------------


def test_bad_files_in_a_batch_are_rejected_and_the_rest_scored(tmp_path, model):
    good = write_star_frame(tmp_path / "good.fits")
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(good.read_bytes()[:5000])
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    paths = [good, truncated, tmp_path / "missing.fits", empty, good]

    results = list(score_files(paths, model, site_id=SITE))

    assert [result.path for result in results] == paths
    kinds = [type(result.outcome) for result in results]
    assert kinds == [FrameScore, FrameRejected, FrameRejected, FrameRejected, FrameScore]
    rejected = [result.outcome for result in results if isinstance(result.outcome, FrameRejected)]
    assert [r.reason for r in rejected] == [
        RejectReason.TRUNCATED,
        RejectReason.NOT_A_FILE,
        RejectReason.EMPTY_FILE,
    ]
    assert rejected[0].file_name == "cut.fits"
    assert rejected[0].message.startswith(f"{truncated}: truncated")
    assert results[0].outcome.message_id == results[-1].outcome.message_id


def test_a_rejection_resent_has_the_same_message_id(tmp_path, model):
    (tmp_path / "empty.fits").write_bytes(b"")
    paths = [tmp_path / "empty.fits"]

    first = next(score_files(paths, model, site_id=SITE)).outcome
    again = next(score_files(paths, model, site_id=SITE)).outcome

    assert first.message_id == again.message_id
    assert first.message_id != next(score_files(paths, model, site_id="other")).outcome.message_id


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
def test_every_real_frame_is_scored(model):
    results = list(score_files(REAL_FRAMES, model, site_id=SITE))

    assert len(results) == len(REAL_FRAMES)
    for result in results:
        assert isinstance(result.outcome, FrameScore), result.outcome
        assert result.outcome.frame.file_name == result.path.name


def test_a_real_difference_image_is_refused_as_not_a_sky_frame(model):
    (result,) = score_files([REAL_DIFFERENCE], model, site_id=SITE)

    assert isinstance(result.outcome, FrameRejected)
    assert "not a sky frame: a difference image" in result.outcome.message


def test_an_uncertain_transparency_keeps_its_grade_and_lowers_the_confidence():
    certain = judge(
        frame_criteria(metrics(transparency=0.75, transparency_error=0.01), None, None), None
    )
    uncertain = judge(
        frame_criteria(metrics(transparency=0.75, transparency_error=0.1), None, None), None
    )

    assert [(r.reason, r.threshold) for r in certain.reasons] == [("transparency", 0.8)]
    assert certain.reasons[0].message == (
        "transparency 0.75 ± 0.032 is below the 0.8 limit for good frames"  # 0.01 and 3 %
    )
    assert certain.label == uncertain.label == QualityLabel.MEDIUM
    assert 0.5 < uncertain.confidence < certain.confidence < 1.0

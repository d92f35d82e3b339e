"""Transparency without a catalogue: each frame against the site's own reference of its field,
on simulated frames of one field under known clouds."""

import pytest

from imaging.field_reference import SiteReferences
from imaging.fits_reader import read_frame
from imaging.photometry import exposure_of
from imaging.scoring import score_frame
from protos import QualityLabel
from protos.frames import TransparencyReference
from tests.quality_models import AlwaysGood
from tests.skies import observe_field
from training.simulator import ObservingConditions


def relative(references: SiteReferences, path):
    frame = read_frame(path)
    exposure = exposure_of(frame)
    assert not isinstance(exposure, str), exposure
    return references.transparency(frame, exposure, frame.saturation_adu or 65535.0)


def sky(tmp_path, transparency: float, seed: int):
    conditions = ObservingConditions(seeing_fwhm_arcsec=1.8, transparency=transparency)
    return observe_field(tmp_path, conditions, seed)


@pytest.mark.parametrize("cloud_transparency", [0.8, 0.5])
def test_clouds_are_measured_against_the_fields_first_clear_frame(tmp_path, cloud_transparency):
    references = SiteReferences(tmp_path / "field-references")
    first = relative(references, sky(tmp_path, 1.0, seed=1))
    assert first.rebuilt and first.starlight.transparency == 1.0

    clear_again = relative(references, sky(tmp_path, 1.0, seed=2))
    cloudy = relative(references, sky(tmp_path, cloud_transparency, seed=3))

    assert not clear_again.rebuilt
    assert clear_again.starlight.transparency == pytest.approx(1.0, abs=0.06)
    assert not cloudy.rebuilt
    assert cloudy.starlight.transparency == pytest.approx(cloud_transparency, rel=0.08)


def test_a_reference_built_through_cloud_gives_way_to_a_clearer_frame(tmp_path):
    references = SiteReferences(tmp_path / "field-references")
    assert relative(references, sky(tmp_path, 0.6, seed=1)).rebuilt

    clear = relative(references, sky(tmp_path, 1.0, seed=2))
    cloudy = relative(references, sky(tmp_path, 0.6, seed=3))

    assert clear.rebuilt and clear.starlight.transparency == 1.0
    assert cloudy.starlight.transparency == pytest.approx(0.6, rel=0.08)


def test_a_cloudy_frame_is_not_good_without_any_catalogue(tmp_path):
    """The site has no photometric calibration and no catalogue: only its own reference."""
    references = SiteReferences(tmp_path / "field-references")
    score_frame(
        read_frame(sky(tmp_path, 1.0, seed=1)), AlwaysGood(), site_id="s", references=references
    )

    score = score_frame(
        read_frame(sky(tmp_path, 0.5, seed=2)), AlwaysGood(), site_id="s", references=references
    )

    assert score.metrics.transparency == pytest.approx(0.5, rel=0.1)
    assert score.metrics.transparency_reference is TransparencyReference.SITE_REFERENCE
    assert score.label is not QualityLabel.GOOD
    assert "transparency" in {reason.reason for reason in score.reasons}


def test_a_frame_that_cannot_be_measured_says_why(tmp_path):
    path = sky(tmp_path, 1.0, seed=1)
    frame = read_frame(path)
    del frame.header["AIRMASS"]

    score = score_frame(
        frame, AlwaysGood(), site_id="s", references=SiteReferences(tmp_path / "refs")
    )

    assert score.metrics.transparency is None
    assert "AIRMASS" in (score.metrics.transparency_note or "")

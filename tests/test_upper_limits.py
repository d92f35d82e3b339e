"""Upper limits at the site: a searched frame's 5-sigma limit from its difference image's noise
and its zero point agrees with the flux errors the search itself measures on the transients it
finds; a frame without a zero point or a gain gets no limit, and the coordinator's source page
shows limits only from frames that covered the position without detecting it (see
`test_console_sources_api`)."""

import dataclasses
import math

import numpy as np
import pytest

from imaging.transients.search import search_transients
from protos import FrameScore
from site_agent.transient_stage import LIMIT_SIGMAS, with_limit
from tests.coordinators import make_score
from training.realbogus.dataset import simulate_search_pair

ZERO_POINT_MAG = 25.0
GAIN_E_PER_ADU = 1.7
EXPTIME_S = 60.0


@pytest.fixture(scope="module")
def searched():
    """A simulated frame with faint-to-bright transients, searched against its reference."""
    pair = simulate_search_pair(
        np.random.default_rng(11),
        reference_epochs=2,
        pixel_scale_arcsec=0.8,
        size_px=384,
        n_transients=6,
        snr_range=(8.0, 40.0),
        artefacts=False,
        hosted_fraction=0.0,
    )
    header = pair.new.header.copy()
    header["GAIN"] = GAIN_E_PER_ADU
    identity = pair.new.identity.model_copy(update={"exptime_s": EXPTIME_S})
    frame = dataclasses.replace(pair.new, header=header, identity=identity)
    return frame, search_transients(frame, pair.reference, site_id="test-site", model=None)


def scored(zero_point_mag: float | None) -> FrameScore:
    score = make_score("test-site", 1)
    metrics = score.metrics.model_copy(update={"zero_point_mag": zero_point_mag})
    return score.model_copy(update={"metrics": metrics})


def test_the_limit_matches_the_flux_errors_the_search_measures(searched):
    frame, outcome = searched
    limited = with_limit(outcome, frame, scored(ZERO_POINT_MAG)).search
    flux_errors_adu = outcome.detections.measurements.flux_err
    measured_limit = ZERO_POINT_MAG - 2.5 * math.log10(
        LIMIT_SIGMAS * float(np.median(flux_errors_adu)) * GAIN_E_PER_ADU / EXPTIME_S
    )
    assert limited.attempted and limited.candidates == outcome.search.candidates
    assert limited.limiting_mag == pytest.approx(measured_limit, abs=0.25)
    shorter_side_deg = min(frame.identity.width_px, frame.identity.height_px) * 0.8 / 3600
    assert limited.searched_radius_deg == pytest.approx(shorter_side_deg / 2, rel=0.01)


def test_no_limit_without_a_zero_point_or_a_gain(searched):
    frame, outcome = searched
    assert with_limit(outcome, frame, scored(None)).search.limiting_mag is None
    header = frame.header.copy()
    del header["GAIN"]
    no_gain = dataclasses.replace(frame, header=header)
    assert with_limit(outcome, no_gain, scored(ZERO_POINT_MAG)).search.limiting_mag is None

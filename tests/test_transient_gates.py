"""The transient search's gates, one at a time, on small made-up searches: which frames are not
searched and why, which detections are dropped and under what name."""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from imaging.fits_reader import Frame
from imaging.transients.align import Alignment, PixelTransform
from imaging.transients.config import TransientSearchSettings
from imaging.transients.measure import Measurements
from imaging.transients.references import Reference, ReferenceInfo
from imaging.transients.search import search_path
from imaging.transients.search_gates import (
    SHARP_PEAK_RATIO,
    SHARP_PEAK_SIGMA,
    STAR_DIPOLE_RATIO,
    DropFaint,
    DropSharpPeaks,
    DropStarDipoles,
    DropTrails,
    FewStarResiduals,
    HasWcs,
    NotFlooded,
    SimilarSeeing,
    StarsMatchReference,
)
from imaging.transients.search_steps import SearchSkipped, SearchWork
from imaging.transients.sources import StarTable
from protos import FrameIdentity

SIDE_PX = 64
FWHM_PX = 2.0


def _wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [SIDE_PX / 2, SIDE_PX / 2]
    wcs.wcs.cdelt = [-0.5 / 3600, 0.5 / 3600]
    return wcs


def _work(*, new_fwhm_px: float = FWHM_PX, **fields) -> SearchWork:
    """A search of a blank 64² frame against a blank reference, at the point where `fields`
    say it is (both PSFs `FWHM_PX` wide unless told)."""
    wcs = _wcs()
    frame = Frame(
        path=Path("new.fits"),
        data=np.zeros((SIDE_PX, SIDE_PX), dtype=np.float32),
        header=fits.Header(),
        wcs=wcs,
        identity=FrameIdentity(
            file_name="new.fits", sha256="0" * 64, width_px=SIDE_PX, height_px=SIDE_PX
        ),
        pixel_scale_arcsec=0.5,
        saturation_adu=None,
    )
    info = ReferenceInfo(
        field_id="F150.0000+02.0000",
        ra_deg=150.0,
        dec_deg=2.0,
        width_px=SIDE_PX,
        height_px=SIDE_PX,
        pixel_scale_arcsec=0.5,
        fwhm_px=FWHM_PX,
        noise_adu=1.0,
        star_count=0,
        members=[],
    )
    no_stars = StarTable(*(np.zeros(0) for _ in StarTable.__dataclass_fields__))
    image = np.zeros((SIDE_PX, SIDE_PX), dtype=np.float32)
    reference = Reference(image, None, wcs, no_stars, np.ones((1, 1)), info)
    return SearchWork(frame, reference, fwhm_px=new_fwhm_px, **fields)


def _peaks(xy: list[tuple[float, float]]) -> np.ndarray:
    peaks = np.zeros(len(xy), dtype=[("x", float), ("y", float)])
    if xy:
        peaks["x"], peaks["y"] = np.array(xy, dtype=float).T
    return peaks


def _measured(count: int, **columns) -> Measurements:
    """`count` bright, round point sources spread over the frame, but for `columns`."""
    rows = {
        "x": np.linspace(5.0, SIDE_PX - 5.0, count),
        "y": np.linspace(5.0, SIDE_PX - 5.0, count),
        "flux": np.full(count, 100.0),
        "flux_err": np.full(count, 5.0),
        "fwhm_px": np.full(count, FWHM_PX),
        "ellipticity": np.zeros(count),
        "dipole_ratio": np.zeros(count),
        "peak_excess": np.zeros(count),
        "peak_over_psf": np.ones(count),
    }
    rows.update({name: np.asarray(values, dtype=float) for name, values in columns.items()})
    return Measurements(**rows)


def _measured_work(measured: Measurements, nearest_star_px) -> SearchWork:
    return _work(measured=measured, nearest_reference_px=np.asarray(nearest_star_px, dtype=float))


def test_a_frame_without_a_wcs_is_not_searched_and_says_why():
    work = _work()
    work.frame = dataclasses.replace(work.frame, wcs=None)
    with pytest.raises(SearchSkipped, match="frame has no WCS: cannot align it"):
        HasWcs().run(work)


def test_seeing_too_different_from_the_reference_skips_the_frame_naming_both_fwhms():
    with pytest.raises(SearchSkipped) as skipped:
        SimilarSeeing(max_ratio=2.5).run(_work(new_fwhm_px=6.0))
    assert skipped.value.reason == (
        "PSF too different from the reference: FWHM 6.00 px vs 2.00 px (ratio 3.00 > 2.5)"
    )
    SimilarSeeing(max_ratio=2.5).run(_work(new_fwhm_px=0.9))  # 2.2 times sharper: searched


def test_too_few_stars_matching_the_reference_means_the_wrong_field():
    alignment = Alignment(PixelTransform(np.eye(2), np.zeros(2)), matched_stars=4, residual_px=0.1)
    with pytest.raises(SearchSkipped, match="only 4 stars match the reference: wrong field"):
        StarsMatchReference(min_stars=5).run(_work(alignment=alignment))


def test_a_flood_of_detections_is_a_failed_subtraction():
    gate = NotFlooded(per_mpx=250.0, floor=25)  # a 64² frame may hold the floor's 25
    gate.run(_work(peaks=_peaks([(1.0 + i, 3.0) for i in range(25)])))
    with pytest.raises(SearchSkipped) as skipped:
        gate.run(_work(peaks=_peaks([(1.0 + i, 3.0) for i in range(26)])))
    assert skipped.value.reason == (
        "subtraction failed: 26 detections on the difference "
        "(more than 25: 250 per megapixel, 25 at least)"
    )


def test_detections_in_a_row_are_a_trail_and_go_while_the_others_stay(caplog):
    trail = [(5.0 + 4.0 * i, 10.0 + 3.0 * i) for i in range(8)]
    work = _work(peaks=_peaks([*trail, (50.0, 8.0), (12.0, 55.0)]))
    with caplog.at_level(logging.INFO):
        DropTrails().run(work)
    assert work.peaks is not None
    assert sorted(zip(work.peaks["x"], work.peaks["y"], strict=True)) == [(12, 55), (50, 8)]
    assert work.dropped == {"detections along trails": 8}
    assert "8 detections along trails dropped frame=new.fits" in caplog.messages


def test_a_satellite_trail_does_not_count_as_a_failed_subtraction():
    """In the search's own order the trail's pieces are gone before the flood check."""
    path = search_path(TransientSearchSettings())
    after_detection = path[[type(step) for step in path].index(DropTrails) :]
    work = _work(peaks=_peaks([(2.0 + 1.5 * i, 5.0 + 1.5 * i) for i in range(40)]))
    for step in after_detection[:2]:  # DropTrails, then NotFlooded: 40 > 25, but a trail
        step.run(work)
    assert work.peaks is not None and len(work.peaks) == 0


def test_faint_and_negative_detections_are_dropped():
    measured = _measured(4, flux=[100.0, 15.0, -100.0, 30.0], flux_err=[5.0, 5.0, 5.0, 7.5])
    work = _measured_work(measured, [np.inf] * 4)
    DropFaint(min_snr=4.0).run(work)
    assert work.measured is not None
    assert list(work.measured.flux) == [100.0, 30.0]  # S/N 20 and exactly 4 stay
    assert work.dropped == {"detections fainter than the S/N limit": 2}


def test_a_dipole_is_dropped_on_a_reference_star_and_kept_in_the_open(caplog):
    deep = -STAR_DIPOLE_RATIO - 0.3
    measured = _measured(3, dipole_ratio=[deep, deep, -0.1])
    work = _measured_work(measured, [0.5, 40.0, 0.5])  # on a star, in the open, on a star
    with caplog.at_level(logging.INFO):
        DropStarDipoles().run(work)
    assert work.measured is not None
    assert list(work.measured.dipole_ratio) == [deep, -0.1]
    assert list(work.nearest_reference_px) == [40.0, 0.5]  # kept beside their detections
    assert "1 dipoles on reference stars dropped frame=new.fits" in caplog.messages


def test_a_detection_sharper_than_the_psf_is_a_cosmic_ray(caplog):
    measured = _measured(
        3,
        peak_excess=[13.0, 0.4, 13.0],
        peak_over_psf=[3.5, 1.1, 0.5 * SHARP_PEAK_RATIO],  # the last is bright, not sharp
    )
    work = _measured_work(measured, [np.inf] * 3)
    assert SHARP_PEAK_SIGMA < 13.0
    with caplog.at_level(logging.INFO):
        DropSharpPeaks().run(work)
    assert work.measured is not None and list(work.measured.peak_excess) == [0.4, 13.0]
    assert work.dropped == {"detections sharper than the PSF": 1}
    assert "1 detections sharper than the PSF dropped frame=new.fits" in caplog.messages


def test_a_gate_that_drops_nothing_says_nothing(caplog):
    work = _measured_work(_measured(2), [np.inf, np.inf])
    with caplog.at_level(logging.DEBUG):
        DropSharpPeaks().run(work)
    assert work.measured is not None and len(work.measured) == 2
    assert work.dropped == {"detections sharper than the PSF": 0}
    assert caplog.messages == []


def test_most_detections_on_reference_stars_means_the_psf_was_not_matched():
    gate = FewStarResiduals(max_residuals=8)
    on_stars = [0.5] * 10
    gate.run(_measured_work(_measured(30), on_stars + [40.0] * 20))  # 10 of 30: searched
    with pytest.raises(SearchSkipped) as skipped:
        gate.run(_measured_work(_measured(12), on_stars + [40.0] * 2))
    assert skipped.value.reason.startswith(
        "subtraction left residuals at 10 of 12 detections on reference stars"
    )

"""Image metrics from sep: right on frames of Gaussian stars with known seeing and shape, the same
on a sampled large frame as on the whole of it, and usable on every real frame."""

import numpy as np
import pytest

from imaging.fits_reader import read_frame
from imaging.metrics import measure_image_metrics, measure_tile, measured_tiles
from imaging.psf import measure_psf
from tests.conftest import REAL_DATA
from tests.skies import NOISE_ADU, SKY_ADU, star_field

REAL_FRAMES = sorted(REAL_DATA.glob("*/*.fits"))


@pytest.mark.parametrize("fwhm_px", [2.5, 4.0, 7.0])
def test_fwhm_of_round_gaussian_stars_is_measured(fwhm_px):
    metrics = measure_image_metrics(
        star_field(fwhm_px=fwhm_px), pixel_scale_arcsec=0.5, saturation_adu=65535.0
    )

    assert metrics.fwhm_arcsec == pytest.approx(0.5 * fwhm_px, rel=0.06)
    assert metrics.ellipticity < 0.08


@pytest.mark.parametrize(("fwhm_px", "beta"), [(3.0, 2.5), (5.0, 4.0)])
def test_fwhm_of_moffat_stars_is_read_at_half_maximum_not_from_the_wings(fwhm_px, beta):
    image = star_field(fwhm_px=fwhm_px, moffat_beta=beta, seed=8)

    metrics = measure_image_metrics(image, pixel_scale_arcsec=1.0, saturation_adu=65535.0)

    # Twice the half-light radius would read 35% (beta 2.5) or 18% (beta 4) wide.
    assert metrics.fwhm_arcsec == pytest.approx(fwhm_px, rel=0.06)


@pytest.mark.parametrize(("axis_ratio", "angle_deg"), [(0.8, 0.0), (0.6, 30.0), (0.4, 100.0)])
def test_ellipticity_of_elongated_stars_is_one_minus_their_axis_ratio(axis_ratio, angle_deg):
    image = star_field(fwhm_px=6.0, axis_ratio=axis_ratio, angle_deg=angle_deg, seed=1)

    metrics = measure_image_metrics(image, pixel_scale_arcsec=0.5, saturation_adu=65535.0)

    assert metrics.ellipticity == pytest.approx(1.0 - axis_ratio, abs=0.03)


def test_background_level_noise_and_source_count_are_measured():
    metrics = measure_image_metrics(
        star_field(stars=300), pixel_scale_arcsec=0.5, saturation_adu=65535.0
    )

    assert metrics.background_adu == pytest.approx(SKY_ADU, abs=1.0)
    assert metrics.background_rms_adu == pytest.approx(NOISE_ADU, rel=0.05)
    assert metrics.source_count == pytest.approx(300, rel=0.1)


def test_saturated_pixels_are_counted_and_saturated_stars_do_not_bias_the_fwhm():
    saturation_adu = 8000.0
    image = np.minimum(star_field(fwhm_px=4.0, peaks_adu=(300.0, 60000.0), seed=2), saturation_adu)

    metrics = measure_image_metrics(image, pixel_scale_arcsec=1.0, saturation_adu=saturation_adu)

    assert metrics.saturated_fraction == pytest.approx(np.mean(image >= saturation_adu))
    assert metrics.saturated_fraction > 0
    assert metrics.fwhm_arcsec == pytest.approx(4.0, rel=0.06)


def test_without_pixel_scale_the_fwhm_is_unknown():
    metrics = measure_image_metrics(star_field(), pixel_scale_arcsec=None, saturation_adu=None)

    assert metrics.fwhm_arcsec is None
    assert metrics.ellipticity is not None
    assert metrics.saturated_fraction == 0.0


def test_a_frame_without_stars_has_no_psf():
    noise = np.random.default_rng(4).normal(SKY_ADU, NOISE_ADU, (512, 512)).astype(np.float32)

    metrics = measure_image_metrics(noise, pixel_scale_arcsec=0.5, saturation_adu=65535.0)

    assert metrics.source_count < 5
    assert metrics.fwhm_arcsec is None and metrics.ellipticity is None


def test_nan_pixels_are_masked_not_measured():
    image = star_field(seed=5)
    image[:, :100] = np.nan

    metrics = measure_image_metrics(image, pixel_scale_arcsec=0.5, saturation_adu=65535.0)

    assert metrics.background_adu == pytest.approx(SKY_ADU, abs=1.0)
    assert metrics.fwhm_arcsec == pytest.approx(2.0, rel=0.06)


def test_large_frame_is_sampled_on_a_quarter_of_it_in_tiles_that_do_not_touch():
    image = np.zeros((4096, 4096), np.float32)

    tiles = measured_tiles(image)

    covered = np.zeros(image.shape, bool)
    for rows, columns in tiles:
        grown = (
            slice(max(rows.start - 1, 0), rows.stop + 1),
            slice(max(columns.start - 1, 0), columns.stop + 1),
        )
        assert not covered[grown].any()  # no shared edge or corner with an earlier tile
        covered[rows, columns] = True
    assert covered.mean() == pytest.approx(0.25)
    assert len({rows.start for rows, _ in tiles}) == 8  # every row of 512 px tiles
    assert covered[:, :2048].mean() == covered[:, 2048:].mean() == pytest.approx(0.25)


def test_sampled_metrics_of_a_large_frame_agree_with_the_whole_frame():
    image = star_field(shape=(2048, 2048), stars=1600, fwhm_px=5.0, axis_ratio=0.7, seed=6)

    sampled = measure_image_metrics(image, pixel_scale_arcsec=1.0, saturation_adu=65535.0)
    whole = measure_tile(image, saturation_adu=65535.0)
    whole_psf = measure_psf(whole.stars)

    assert whole_psf is not None
    assert sampled.fwhm_arcsec == pytest.approx(whole_psf.fwhm_px, rel=0.03)
    assert sampled.ellipticity == pytest.approx(whole_psf.ellipticity, abs=0.02)
    # A measured fraction f of the frame holds a Poisson count: k / f has sigma sqrt(N / f).
    assert abs(sampled.source_count - whole.detections) < 3 * np.sqrt(whole.detections / (1 / 8))


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.parametrize("path", REAL_FRAMES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_frame_gets_metrics(path):
    frame = read_frame(path)

    metrics = measure_image_metrics(
        frame.data,
        pixel_scale_arcsec=frame.pixel_scale_arcsec or 1.0,
        saturation_adu=frame.saturation_adu,
    )

    assert metrics.source_count > 0
    assert metrics.background_rms_adu > 0


def test_sep_test_image_source_count_matches_its_sextractor_catalogue(real_data):
    catalogue = np.loadtxt(real_data / "sep" / "image.cat", comments="#", ndmin=2)
    frame = read_frame(real_data / "sep" / "image.fits")

    metrics = measure_image_metrics(frame.data, pixel_scale_arcsec=None, saturation_adu=None)

    assert metrics.source_count == pytest.approx(len(catalogue), rel=0.15)

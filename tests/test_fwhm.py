"""The seeing FWHM is continuous and right on undersampled stars, comes with its error, and
agrees with SExtractor's half-light radii on the sep test image."""

import numpy as np
import pytest
import sep

from bench.bench_fwhm import pixel_integrated_star_field
from imaging.fits_reader import read_frame
from imaging.metrics import measure_frame, measure_image_metrics
from imaging.psf_fit import moffat_fwhm

TRUE_FWHM_PX = (1.2, 1.4, 1.6, 1.8, 2.0, 2.4, 2.8, 3.3, 4.0)


@pytest.mark.parametrize("beta", [2.5, 4.5])
def test_fwhm_follows_the_true_width_continuously_from_1_2_to_4_px(beta):
    measured = [
        measure_image_metrics(
            pixel_integrated_star_field(fwhm_px=fwhm, beta=beta, seed=5),
            pixel_scale_arcsec=1.0,
            saturation_adu=65535.0,
        ).fwhm_arcsec
        for fwhm in TRUE_FWHM_PX
    ]

    for fwhm, value in zip(TRUE_FWHM_PX, measured, strict=True):
        assert value == pytest.approx(fwhm, rel=0.08)
    assert all(np.diff(measured) > 0)  # no two widths read the same


def test_the_fwhm_comes_with_an_error_that_covers_the_truth():
    measured = measure_frame(
        pixel_integrated_star_field(fwhm_px=2.2, beta=3.5, seed=9),
        pixel_scale_arcsec=0.5,
        saturation_adu=65535.0,
    )
    psf = measured.psf

    assert psf is not None
    assert 0 < psf.fwhm_error_px < 0.1 * psf.fwhm_px
    assert abs(psf.fwhm_px - 2.2) < 3 * psf.fwhm_error_px
    # on the wire, in arcsec, beside the FWHM it qualifies
    assert measured.metrics.fwhm_error_arcsec == pytest.approx(0.5 * psf.fwhm_error_px)
    assert measured.metrics.fwhm_arcsec == pytest.approx(0.5 * psf.fwhm_px)


def test_half_light_radius_matches_the_sextractor_catalogue(real_data):
    """The PSF fitted to the sep test image, drawn as a star and measured as SExtractor
    measures, has the half-light radius (FLUX_RADIUS at 0.5) of the catalogue's stars."""
    catalogue = np.loadtxt(real_data / "sep" / "image.cat", ndmin=2)
    flux_radius, flags = catalogue[:, 18], catalogue[:, 20]
    stars = (flags == 0) & (flux_radius < 1.5)  # the stellar locus; galaxies are wider
    frame = read_frame(real_data / "sep" / "image.fits")

    psf = measure_frame(frame.data, pixel_scale_arcsec=None, saturation_adu=None).psf

    assert psf is not None
    star = _drawn_star(psf.fwhm_px, psf.beta)
    radius, _ = sep.flux_radius(star, [32.0], [32.0], [20.0], 0.5, subpix=5)
    assert radius[0] == pytest.approx(np.median(flux_radius[stars]), rel=0.1)


def _drawn_star(fwhm_px: float, beta: float) -> np.ndarray:
    """A round Moffat star integrated over its pixels, centred on pixel (32, 32)."""
    alpha = fwhm_px / float(moffat_fwhm(1.0, beta))
    fine = (np.arange(65 * 9) + 0.5) / 9 - 0.5 - 32
    profile = (1 + (fine[:, np.newaxis] ** 2 + fine[np.newaxis, :] ** 2) / alpha**2) ** -beta
    return np.ascontiguousarray(profile.reshape(65, 9, 65, 9).mean(axis=(1, 3)))

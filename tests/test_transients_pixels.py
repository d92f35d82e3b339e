"""Pixel steps of difference imaging: kernel fit, alignment and cutouts, on synthetic arrays."""

import numpy as np
import sep
from astropy.wcs import WCS
from scipy import ndimage

from site_agent.transients.align import (
    refine_on_stars,
    resample_onto_new,
    wcs_transform,
)
from site_agent.transients.cutouts import cutout, decode, encode, encode_triplet
from site_agent.transients.psf_match import convolve, fit_kernel
from site_agent.transients.sources import extract_whole_frame


def _star_field(rng, shape=(200, 200), count=60, sigma=1.2):
    image = np.zeros(shape, dtype=np.float32)
    xy = rng.uniform(15, shape[0] - 15, (count, 2))
    image[xy[:, 1].astype(int), xy[:, 0].astype(int)] = rng.uniform(2e3, 2e4, count)
    return ndimage.gaussian_filter(image, sigma), xy.astype(int)


def test_kernel_fit_matches_seeing_and_recovers_the_flux_scale():
    rng = np.random.default_rng(3)
    sharp, xy = _star_field(rng, sigma=1.2)
    blurred = 0.8 * ndimage.gaussian_filter(sharp, np.sqrt(2.0**2 - 1.2**2)) + 5.0
    noise = 1.0
    sharp += rng.normal(0, noise, sharp.shape).astype(np.float32)
    blurred += rng.normal(0, noise, blurred.shape).astype(np.float32)
    solution = fit_kernel(
        sharp,
        blurred,
        np.full(sharp.shape, 2 * noise**2),
        xy.astype(float),
        source_fwhm_px=1.2 * 2.3548,
        target_fwhm_px=2.0 * 2.3548,
        convolved="reference",
        min_stamps=6,
    )
    assert abs(solution.photometric_scale - 0.8) < 0.02
    assert abs(solution.background_adu - 5.0) < 0.5
    residual = blurred - convolve(sharp, solution.kernel) - solution.background_adu
    inner = (slice(20, -20), slice(20, -20))
    assert np.std(residual[inner]) < 2.0 * noise


def _tan(crval, crpix=(100.0, 100.0), scale_deg=0.5 / 3600):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = crval
    wcs.wcs.crpix = crpix
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    return wcs


def test_alignment_corrects_a_wcs_that_is_off_by_pixels():
    rng = np.random.default_rng(4)
    reference, xy = _star_field(rng)
    true_shift = np.array([3.3, -2.6])
    new = ndimage.shift(reference, true_shift[::-1], order=3)
    new_wcs = _tan([150.0, 2.0])
    ref_wcs = _tan([150.0, 2.0], crpix=(101.5, 99.0))  # WCS thinks a different offset
    guess = wcs_transform(new_wcs, ref_wcs, new.shape)
    alignment = refine_on_stars(guess, xy + true_shift, xy.astype(float), 8.0)
    assert alignment.matched_stars >= 50
    assert np.allclose(alignment.transform.apply(xy + true_shift), xy, atol=0.05)
    aligned = resample_onto_new(reference, alignment.transform, new.shape)
    inner = (slice(20, -20), slice(20, -20))
    # bilinear resampling softens a 1.2 px star a little; the kernel fit absorbs that
    assert np.nanmax(np.abs(aligned - new)[inner]) < 0.15 * new.max()
    assert abs(aligned[inner].sum() / new[inner].sum() - 1.0) < 0.01


def test_cutouts_are_centred_padded_and_survive_the_wire():
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    stamp = cutout(image, 2.2, 50.0)
    assert stamp.shape == (31, 31)
    assert stamp[15, 15] == image[50, 2]
    assert np.isnan(stamp[:, :13]).all() and not np.isnan(stamp[:, 13:]).any()
    assert np.array_equal(decode(encode(stamp)), stamp, equal_nan=True)
    triplet = np.stack([stamp, stamp, stamp])
    cutouts = encode_triplet(triplet)
    assert np.array_equal(decode(cutouts.difference), stamp, equal_nan=True)


def test_a_frame_too_big_for_seps_pixel_stack_is_extracted_and_the_limit_restored():
    image = np.zeros((1200, 1200), dtype=np.float32)
    image[100:1100, 100:1100] = 100.0  # one object of a million pixels over the threshold
    default = sep.get_extract_pixstack()
    assert default < 1_000_000
    objects = extract_whole_frame(image, thresh=1.0, err=1.0, minarea=5)
    assert len(objects) == 1 and objects["npix"][0] >= 1_000_000
    assert sep.get_extract_pixstack() == default  # small extractions stay fast

"""Pixel steps of difference imaging: kernel fit, alignment and cutouts, on synthetic arrays."""

import numpy as np
import pytest
import sep
from astropy.wcs import WCS
from scipy import ndimage

from imaging.gaussian import FWHM_PER_SIGMA
from imaging.transients.align import (
    refine_on_stars,
    resample_onto_new,
    wcs_transform,
)
from imaging.transients.cutouts import cutout, decode, encode, encode_triplet
from imaging.transients.detect import detect_peaks, gaussian_filter_kernel
from imaging.transients.measure import measure_candidates
from imaging.transients.psf_match import KernelSolution, convolve, fit_kernel
from imaging.transients.search_gates import SHARP_PEAK_RATIO, SHARP_PEAK_SIGMA
from imaging.transients.search_steps import dilate
from imaging.transients.sources import (
    extract_whole_frame,
    find_stars,
    psf_fwhm_px,
    subtract_background,
)
from imaging.transients.subtract import DifferenceImage, difference_image


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
        source_fwhm_px=1.2 * FWHM_PER_SIGMA,
        target_fwhm_px=2.0 * FWHM_PER_SIGMA,
        convolved="reference",
        min_stamps=6,
    )
    assert abs(solution.photometric_scale - 0.8) < 0.02
    assert abs(solution.background_adu - 5.0) < 0.5
    residual = blurred - convolve(sharp, solution.kernel) - solution.background_adu
    inner = (slice(20, -20), slice(20, -20))
    assert np.std(residual[inner]) < 2.0 * noise


def test_hot_pixels_are_not_stars_and_do_not_sharpen_the_seeing():
    rng = np.random.default_rng(8)
    stars, _ = _star_field(rng, shape=(300, 300), count=30, sigma=1.5)
    image = stars + rng.normal(100.0, 3.0, stars.shape).astype(np.float32)
    hot = rng.integers(10, 290, (60, 2))  # twice as many hot pixels as stars
    image[hot[:, 1], hot[:, 0]] += rng.uniform(500.0, 5000.0, len(hot)).astype(np.float32)
    found = find_stars(subtract_background(image), min_snr=15.0)
    distance_to_hot = np.hypot(*(found.xy[:, None, :] - hot[None, :, :]).transpose(2, 0, 1))
    assert not (distance_to_hot.min(axis=1) < 0.5).any()
    assert abs(psf_fwhm_px(found) - FWHM_PER_SIGMA * 1.5) < 0.6


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


def test_a_transient_on_the_sharper_new_frame_does_not_raise_its_own_noise():
    """The new frame is convolved when it is the sharper one: its transients must not count as
    star light in the noise map (they did, and lost half their S/N at S/N 5)."""
    rng = np.random.default_rng(5)
    shape, sigma_new, sigma_ref, new_noise, ref_noise = (128, 128), 1.2, 2.0, 5.0, 1.0
    u = np.arange(-10, 11)
    sigma_kernel = np.sqrt(sigma_ref**2 - sigma_new**2)
    kernel = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma_kernel**2))
    new = np.zeros(shape, dtype=np.float32)
    new[64, 64] = 3000.0
    new = ndimage.gaussian_filter(new, sigma_new) + rng.normal(0, new_noise, shape)
    reference = rng.normal(0, ref_noise, shape).astype(np.float32)  # the transient is new
    solution = KernelSolution(
        kernel=(kernel / kernel.sum()).astype(np.float32),
        background_adu=0.0,
        convolved="new",
        stamps_used=20,
        residual_chi2=1.0,
        source_noise_per_adu=1 / 1.5,  # photons of a gain of 1.5 e-/ADU
        mismatch_fraction=0.05,
    )
    difference = difference_image(
        new.astype(np.float32),
        np.full(shape, new_noise, dtype=np.float32),
        reference,
        ref_noise,
        solution,
        np.zeros(shape, dtype=bool),
        psf_fwhm_px=FWHM_PER_SIGMA * sigma_ref,
        star_xy=np.zeros((0, 2)),
    )
    around = difference.noise[60:69, 60:69]
    assert around.max() < 1.15 * np.median(difference.noise)


def test_masked_convolution_and_in_place_sky_subtraction_match_their_copying_forms():
    rng = np.random.default_rng(5)
    stars, _ = _star_field(rng, shape=(700, 700))
    image = stars + rng.normal(100.0, 5.0, stars.shape).astype(np.float32)
    image[10:20, 10:20] = np.nan
    mask = rng.random(image.shape) < 0.01
    kernel = np.outer(np.hanning(7), np.hanning(7)).astype(np.float32)
    masked = convolve(np.nan_to_num(image), kernel, zero_where=mask)  # bands of 512 rows
    copied = convolve(np.where(mask, np.float32(0.0), np.nan_to_num(image)), kernel)
    assert np.allclose(masked, copied, atol=1e-3)
    kept = image.copy()
    copy = subtract_background(kept, saturation_adu=2e4)
    assert np.array_equal(kept, image, equal_nan=True)  # the input is left alone
    in_place = subtract_background(kept, saturation_adu=2e4, overwrite=True)
    assert np.shares_memory(in_place.image, kept)
    assert np.array_equal(in_place.image, copy.image) and np.array_equal(in_place.bad, copy.bad)
    assert in_place.bad[15, 15] and in_place.image[15, 15] == 0.0


def test_mask_growth_equals_the_two_dimensional_maximum_filter_at_every_radius():
    rng = np.random.default_rng(9)
    sparse = np.zeros((600, 500), dtype=bool)
    sparse[rng.integers(0, 600, 12), rng.integers(0, 500, 12)] = True
    sparse[0, 499] = sparse[599, 3] = True  # corners: the window is clipped there
    edges = np.zeros_like(sparse)
    edges[:, :4] = True
    for mask in (sparse, edges, rng.random(sparse.shape) < 0.01, rng.random((5, 40)) < 0.1):
        for radius in range(1, 21):
            expected = ndimage.maximum_filter(mask.view(np.uint8), size=2 * radius + 1)
            assert np.array_equal(dilate(mask, radius), expected.view(bool)), radius


def _point_source_at_filtered_snr(fwhm_px: float, snr: float, shape=(64, 64)) -> np.ndarray:
    """A Gaussian point source centred on a pixel, scaled to `snr` after matched filtering
    (unit white noise)."""
    source = np.zeros(shape, dtype=np.float32)
    source[shape[0] // 2, shape[1] // 2] = 1.0
    source = ndimage.gaussian_filter(source, fwhm_px / FWHM_PER_SIGMA)
    kernel = gaussian_filter_kernel(fwhm_px)
    filtered = ndimage.convolve(source, kernel) / np.sqrt(np.sum(kernel**2))
    return (source * snr / filtered.max()).astype(np.float32)


def _unit_noise_difference(data: np.ndarray, fwhm_px: float) -> DifferenceImage:
    """A difference image of unit noise, every pixel usable."""
    return DifferenceImage(
        data=data,
        noise=np.ones_like(data),
        bad=np.zeros(data.shape, dtype=bool),
        psf_fwhm_px=fwhm_px,
        noise_rescale=1.0,
    )


def test_a_sharp_point_source_just_above_the_threshold_is_detected():
    fwhm = 1.6  # the filtered peak is one pixel wide: its neighbours lie well below it
    for snr, found in ((4.5, 1), (3.9, 0)):
        data = _point_source_at_filtered_snr(fwhm, snr)
        difference = _unit_noise_difference(data, fwhm)
        assert len(detect_peaks(difference, threshold_sigma=4.2)) == found


def test_a_cosmic_ray_is_sharper_than_the_psf_and_a_point_source_is_not():
    rng = np.random.default_rng(4)
    fwhm, sigma = 4.0, 4.0 / FWHM_PER_SIGMA
    yy, xx = np.mgrid[0:96, 0:96]
    data = rng.normal(0.0, 1.0, (96, 96)).astype(np.float32)
    star = np.exp(-((xx - 30.3) ** 2 + (yy - 40.6) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    data += (400.0 * star).astype(np.float32)  # S/N ~70
    data[60, 70], data[60, 71], data[61, 70] = 60.0, 35.0, 12.0  # a cosmic ray's few pixels
    difference = _unit_noise_difference(data, fwhm)
    measured = measure_candidates(difference, detect_peaks(difference, threshold_sigma=4.2))
    source = np.argmin(np.hypot(measured.x - 30.3, measured.y - 40.6))
    ray = np.argmin(np.hypot(measured.x - 70.2, measured.y - 60.2))
    assert measured.snr[source] > 50 and measured.snr[ray] > 20  # both look significant
    assert abs(measured.peak_excess[source]) < 3 and measured.peak_over_psf[source] < 1.5
    assert measured.peak_excess[ray] >= SHARP_PEAK_SIGMA
    assert measured.peak_over_psf[ray] >= SHARP_PEAK_RATIO


def _trail(shape: tuple[int, int], angle_deg: float, peak: float, fwhm: float) -> np.ndarray:
    """A satellite trail through the image's centre: a Gaussian profile `peak` sigma high."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    angle, sigma = np.deg2rad(angle_deg), fwhm / FWHM_PER_SIGMA
    across = (yy - shape[0] / 2) * np.cos(angle) - (xx - shape[1] / 2) * np.sin(angle)
    return (peak * np.exp(-(across**2) / (2 * sigma**2))).astype(np.float32)


def test_a_satellite_trail_leaves_nothing_but_the_noise_it_lies_on():
    noise = np.random.default_rng(8).normal(0.0, 1.0, (512, 512)).astype(np.float32)
    with_trail = _unit_noise_difference(noise + _trail((512, 512), 70.0, 6.0, 3.0), 3.0)
    found = detect_peaks(with_trail, threshold_sigma=4.2)
    alone = detect_peaks(_unit_noise_difference(noise.copy(), 3.0), threshold_sigma=4.2)
    assert len(found) > 0
    for x, y in zip(found["x"], found["y"], strict=True):  # the noise's own peaks, no leftovers
        assert np.hypot(alone["x"] - x, alone["y"] - y).min() < 0.5
    angle = np.deg2rad(70.0)
    from_axis = np.abs((alone["y"] - 256.0) * np.cos(angle) - (alone["x"] - 256.0) * np.sin(angle))
    away = alone[from_axis >= 10.0]  # the noise's peaks off the trail: none may be lost
    lost = [
        (float(x), float(y))
        for x, y in zip(away["x"], away["y"], strict=True)
        if np.hypot(found["x"] - x, found["y"] - y).min() >= 0.5
    ]
    assert len(away) > 0 and lost == [], f"noise peaks lost away from the trail: {lost}"
    assert np.std(with_trail.data) < 1.01  # the trail was taken out of the difference


def test_point_sources_on_and_beside_a_satellite_trail_are_still_detected():
    rng = np.random.default_rng(7)
    fwhm, sigma = 4.0, 4.0 / FWHM_PER_SIGMA
    yy, xx = np.mgrid[0:512, 0:512]
    # a trail 8 sigma at its peak, across the frame at 30 degrees
    data = rng.normal(0.0, 1.0, (512, 512)).astype(np.float32) + _trail((512, 512), 30.0, 8.0, fwhm)
    angle = np.deg2rad(30.0)
    sources = [(256.0, 256.0), (100.0, 256.0 + (100.0 - 256.0) * np.tan(angle) + 5.0)]
    sources.append((400.0, 256.0 + (400.0 - 256.0) * np.tan(angle) - 3.0))
    for x, y in sources:  # S/N ~20 point sources: on the trail's axis and 3-5 px beside it
        profile = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
        data += (120.0 * profile).astype(np.float32)
    difference = _unit_noise_difference(data, fwhm)
    objects = detect_peaks(difference, threshold_sigma=4.2)
    measured = measure_candidates(difference, objects)
    for x, y in sources:  # found, and measured without the trail's light
        nearest = np.argmin(np.hypot(measured.x - x, measured.y - y))
        assert np.hypot(measured.x[nearest] - x, measured.y[nearest] - y) < 1.0
        assert measured.flux[nearest] == pytest.approx(120.0, rel=0.2)
    # the trail leaves nothing behind: within two FWHM of its axis are the sources and nothing else
    from_axis = np.abs(
        (objects["y"] - 256.0) * np.cos(angle) - (objects["x"] - 256.0) * np.sin(angle)
    )
    near = objects[from_axis <= 2 * fwhm]
    on_trail = [(float(x), float(y)) for x, y in zip(near["x"], near["y"], strict=True)]
    assert len(on_trail) == len(sources), f"detections on the trail: {on_trail}"

"""The sky simulator writes frames an astronomer would believe, with a truth that is true."""

from datetime import UTC, datetime

import numpy as np
import pytest
import sep
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from imaging.quality_thresholds import QualityThresholds
from protos import QualityLabel
from training.simulator import (
    ObservingConditions,
    SimCamera,
    StarCatalogue,
    label_conditions,
    read_truth,
    sample_conditions,
    simulate_frame,
    simulate_pair,
    write_frame,
)
from training.simulator.conditions import criterion_value
from training.simulator.galaxies import GalaxyCatalogue, draw_galaxy_catalogue
from training.simulator.pairs import inject_transients
from training.simulator.pointing import tan_wcs
from training.simulator.truth import InjectedTransient

NIGHT = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
FIELD = {"ra_deg": 133.0, "dec_deg": -30.0}  # near the zenith of La Silla that night, b = 9 deg
SMALL = SimCamera(width_px=512, height_px=384)
CLEAR = ObservingConditions(seeing_fwhm_arcsec=2.0)


def simulate(conditions=CLEAR, camera=SMALL, seed=1, **kwargs):
    return simulate_frame(
        conditions,
        camera,
        date_obs=NIGHT,
        site_name="la-silla",
        rng=np.random.default_rng(seed),
        **(FIELD | kwargs),
    )


def background_subtracted(data):
    pixels = data.astype(np.float64)
    background = sep.Background(pixels)
    return pixels - background, background.globalrms


def bright_isolated_stars(data, camera, min_peak_sigma=20.0):
    """sep detections of bright, unflagged, unsaturated, resolved (not cosmic-ray) sources."""
    pixels, rms = background_subtracted(data)
    objects = sep.extract(pixels, 5.0, err=rms, minarea=5)
    unsaturated = objects["peak"] < 0.5 * (camera.saturation_adu - camera.bias_adu)
    keep = (objects["flag"] == 0) & (objects["a"] > 1.0) & unsaturated
    return pixels, objects[keep & (objects["peak"] > min_peak_sigma * rms)]


def half_maximum_fwhm_px(pixels, objects, radius=15):
    """Median FWHM of stars from the area of their pixels above half the peak."""
    widths = []
    for star in objects:
        row, col = round(float(star["y"])), round(float(star["x"]))
        stamp = pixels[row - radius : row + radius + 1, col - radius : col + radius + 1]
        if stamp.shape == (2 * radius + 1, 2 * radius + 1):
            widths.append(2.0 * np.sqrt((stamp > stamp.max() / 2).sum() / np.pi))
    return float(np.median(widths))


def test_file_has_observatory_header_and_truth_sidecar(tmp_path):
    frame = simulate()
    path = write_frame(frame, tmp_path / "frame.fits")
    header = fits.getheader(path)
    for key in ("DATE-OBS", "EXPTIME", "FILTER", "TELESCOP", "INSTRUME", "OBSERVAT", "GAIN"):
        assert key in header
    for key in ("RDNOISE", "SATURATE", "AIRMASS", "OBJECT", "RA", "DEC", "CTYPE1", "CRVAL1"):
        assert key in header
    assert header["DATE-OBS"].startswith("2026-03-01T03:00:00")
    assert header["EXPTIME"] == SMALL.exptime_s
    assert header["SATURATE"] == SMALL.saturation_adu
    assert header["SIMLABEL"] == "good"
    assert header["SIMSEEIN"] == pytest.approx(2.0)
    assert header["ALTITUDE"] > 85.0  # FIELD transits near the zenith of La Silla that night
    assert header["AIRMASS"] == pytest.approx(1 / np.sin(np.deg2rad(header["ALTITUDE"])), abs=0.01)
    assert (header["CRVAL1"], header["CRVAL2"]) == pytest.approx((133.0, -30.0))
    assert header["CDELT2"] * 3600 == pytest.approx(SMALL.pixel_scale_arcsec)
    assert read_truth(path) == frame.truth


def test_data_are_uint16_stored_with_bzero_like_a_camera(tmp_path):
    frame = simulate()
    path = write_frame(frame, tmp_path / "frame.fits")
    assert frame.data.dtype == np.uint16 and frame.data.shape == (384, 512)
    with fits.open(path, do_not_scale_image_data=True) as raw:
        assert raw[0].header["BITPIX"] == 16
        assert raw[0].header["BZERO"] == 32768
    np.testing.assert_array_equal(fits.getdata(path), frame.data)


def test_stars_land_where_the_header_wcs_says_their_catalogue_positions_are(tmp_path):
    frame = simulate()
    path = write_frame(frame, tmp_path / "frame.fits")
    wcs = WCS(fits.getheader(path))
    pixels, stars = bright_isolated_stars(fits.getdata(path), SMALL)
    assert len(stars) >= 10
    sigma_px = CLEAR.seeing_fwhm_arcsec / SMALL.pixel_scale_arcsec / 2.355
    x, y, _ = sep.winpos(pixels, stars["x"], stars["y"], np.full(len(stars), sigma_px))
    catalogue = SkyCoord(frame.stars.ra_deg, frame.stars.dec_deg, unit="deg")
    _, separation, _ = wcs.pixel_to_world(x, y).match_to_catalog_sky(catalogue)
    assert np.median(separation.arcsec) < 0.05  # a tenth of a pixel


def test_sky_level_and_star_fluxes_follow_the_zero_point():
    frame = simulate()
    truth = frame.truth
    sky_adu = SMALL.bias_adu + truth.sky_e_per_px / SMALL.gain_e_per_adu
    assert np.median(frame.data) == pytest.approx(sky_adu, rel=0.02)
    pixels, stars = bright_isolated_stars(frame.data, SMALL)
    flux_adu, _, _ = sep.sum_circle(pixels, stars["x"], stars["y"], 12.0)
    x, y = frame.stars.pixel_positions(frame.wcs)
    nearest = [
        np.argmin(np.hypot(x - sx, y - sy)) for sx, sy in zip(stars["x"], stars["y"], strict=True)
    ]
    expected_e = SMALL.source_electrons(frame.stars.mag[nearest], truth.airmass)
    ratio = np.median(flux_adu * SMALL.gain_e_per_adu / expected_e)
    assert ratio == pytest.approx(1.0, abs=0.06)  # vignetting and the wings beyond 12 px


def test_same_seed_gives_the_identical_frame_and_another_seed_does_not():
    first, again, other = simulate(seed=7), simulate(seed=7), simulate(seed=8)
    np.testing.assert_array_equal(first.data, again.data)
    assert first.truth == again.truth
    assert first.header == again.header
    assert not np.array_equal(first.data, other.data)


@pytest.mark.parametrize("label", list(QualityLabel))
def test_sampled_conditions_give_their_label_clear_of_every_threshold(label):
    thresholds = QualityThresholds()
    for seed in range(50):
        conditions = sample_conditions(np.random.default_rng(seed), label)
        verdict, grades = label_conditions(conditions)
        assert verdict is label
        for name in set(grades) - {"satellite_trails"}:  # counts: 0, 1, 2+ are unambiguous
            limit = getattr(thresholds, name)
            value = criterion_value(conditions, name)
            distance = min(abs(value - limit.good), abs(value - limit.bad))
            assert distance >= 0.2 * abs(limit.bad - limit.good) - 1e-9, (name, value)


def test_medium_and_bad_frames_fail_on_one_or_two_criteria():
    for label in (QualityLabel.MEDIUM, QualityLabel.BAD):
        failures = [
            sum(grade is not QualityLabel.GOOD for grade in grades.values())
            for grades in (
                label_conditions(sample_conditions(np.random.default_rng(seed), label))[1]
                for seed in range(60)
            )
        ]
        assert set(failures) <= {1, 2, 3} and np.mean(failures) < 1.8


def test_label_is_the_worst_criterion():
    assert label_conditions(CLEAR)[0] is QualityLabel.GOOD
    medium_seeing = CLEAR.model_copy(update={"seeing_fwhm_arcsec": 3.2})
    assert label_conditions(medium_seeing)[0] is QualityLabel.MEDIUM
    clouds_too = medium_seeing.model_copy(update={"transparency": 0.2})
    label, grades = label_conditions(clouds_too)
    assert label is QualityLabel.BAD
    assert grades["seeing"] is QualityLabel.MEDIUM and grades["transparency"] is QualityLabel.BAD


@pytest.mark.parametrize("label", list(QualityLabel))
def test_rendered_frame_keeps_the_label_of_its_conditions(label):
    for seed in range(3):
        rng = np.random.default_rng([seed, 99])
        conditions = sample_conditions(rng, label)
        frame = simulate_frame(conditions, SMALL, date_obs=NIGHT, site_name="x", rng=rng)
        assert frame.truth.label is label
        assert frame.header["SIMLABEL"] == label.value


@pytest.mark.parametrize("seeing", [2.0, 3.5])
def test_measured_fwhm_tracks_the_requested_seeing(seeing):
    camera = SimCamera(width_px=1024, height_px=1024)
    frame = simulate(ObservingConditions(seeing_fwhm_arcsec=seeing), camera=camera, seed=3)
    pixels, stars = bright_isolated_stars(frame.data, camera)
    assert len(stars) >= 5
    fwhm_arcsec = half_maximum_fwhm_px(pixels, stars) * camera.pixel_scale_arcsec
    assert fwhm_arcsec == pytest.approx(seeing, rel=0.15)


def test_trailed_stars_are_elongated_along_the_trail():
    trailed = CLEAR.model_copy(update={"trailing_arcsec": 6.0, "trail_angle_deg": 30.0})
    _, round_stars = bright_isolated_stars(simulate(CLEAR).data, SMALL)
    _, long_stars = bright_isolated_stars(simulate(trailed).data, SMALL)
    assert np.median(round_stars["a"] / round_stars["b"]) < 1.2
    assert np.median(long_stars["a"] / long_stars["b"]) > 1.8
    assert np.rad2deg(np.median(long_stars["theta"])) == pytest.approx(30.0, abs=5.0)


def test_defocused_stars_are_donuts_with_a_dark_centre():
    diameter_px = 9.0 / SMALL.pixel_scale_arcsec
    defocused = CLEAR.model_copy(update={"seeing_fwhm_arcsec": 1.0, "defocus_arcsec": 9.0})
    frame = simulate(defocused)
    pixels, _ = background_subtracted(frame.data)
    x, y = frame.stars.pixel_positions(frame.wcs)
    inside = (x > 20) & (x < SMALL.width_px - 20) & (y > 20) & (y < SMALL.height_px - 20)
    star = np.argmin(np.where(inside, frame.stars.mag, np.inf))
    row, col = round(float(y[star])), round(float(x[star]))
    centre = pixels[row - 1 : row + 2, col - 1 : col + 2].mean()
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring_rows = np.rint(y[star] + 0.35 * diameter_px * np.sin(angles)).astype(int)
    ring_cols = np.rint(x[star] + 0.35 * diameter_px * np.cos(angles)).astype(int)
    assert centre < 0.7 * pixels[ring_rows, ring_cols].mean()


def test_clouds_reduce_the_detected_stars():
    def detected(conditions):
        pixels, rms = background_subtracted(simulate(conditions, seed=5).data)
        return len(sep.extract(pixels, 5.0, err=rms, minarea=5))

    clear = detected(CLEAR)
    cloudy = detected(CLEAR.model_copy(update={"transparency": 0.25, "cloud_patchiness": 0.3}))
    assert cloudy < 0.6 * clear


def test_saturated_stars_clip_at_saturate_and_bleed_along_their_column():
    centre = simulate().wcs.pixel_to_world(256.3, 190.7)
    bright = StarCatalogue(
        ra_deg=np.array([centre.ra.deg]), dec_deg=np.array([centre.dec.deg]), mag=np.array([7.0])
    )
    frame = simulate(stars=bright)
    saturated = frame.data == frame.header["SATURATE"]
    assert frame.data.max() == frame.header["SATURATE"]
    rows, cols = np.nonzero(saturated)
    assert np.ptp(rows) > 2 * np.ptp(cols)  # the bleed trail runs along the column
    assert frame.truth.saturated_fraction == pytest.approx(saturated.mean())


def test_hot_pixels_stay_put_from_frame_to_frame():
    dark_sky = CLEAR.model_copy(update={"transparency": 0.05})
    first, second = simulate(dark_sky, seed=1).data, simulate(dark_sky, seed=2).data
    hot_first = first > np.median(first) + 2000
    hot_second = second > np.median(second) + 2000
    common = hot_first & hot_second
    assert common.sum() >= 0.5 * min(hot_first.sum(), hot_second.sum()) > 0


def test_pointing_below_the_horizon_is_refused():
    truth = simulate().truth
    with pytest.raises(ValueError, match="below"):
        simulate(ra_deg=(truth.ra_deg + 180.0) % 360.0, dec_deg=-truth.dec_deg)


def test_injected_transients_are_in_the_new_frame_only():
    camera = SMALL.model_copy(update={"cosmic_rays_per_mpx_per_s": 0.0, "hot_pixels_per_mpx": 0.0})
    pair = simulate_pair(
        camera, n_transients=4, snr_range=(40.0, 60.0), rng=np.random.default_rng(11)
    )
    assert len(pair.transients) == 4
    assert pair.new.truth.transients == pair.transients
    new, _ = background_subtracted(pair.new.data)
    reference, _ = background_subtracted(pair.reference.data)
    for transient in pair.transients:
        in_new, _, _ = sep.sum_circle(new, [transient.x_px], [transient.y_px], 6.0)
        in_reference, _, _ = sep.sum_circle(
            reference, [transient.ref_x_px], [transient.ref_y_px], 6.0
        )
        assert in_new[0] * camera.gain_e_per_adu == pytest.approx(transient.flux_e, rel=0.2)
        assert in_reference[0] * camera.gain_e_per_adu < 0.3 * transient.flux_e


def test_new_frame_of_a_pair_is_pointed_a_few_pixels_away():
    pair = simulate_pair(SMALL, n_transients=0, snr_range=(5.0, 10.0), rng=np.random.default_rng(2))
    offset = pair.new.wcs.world_to_pixel(pair.reference.wcs.pixel_to_world(0, 0))
    assert 0 < np.hypot(*offset) <= 5.0 * np.sqrt(2)
    assert pair.new.header["OBJECT"] == pair.reference.header["OBJECT"]


def test_galaxy_counts_follow_the_observed_number_counts():
    wide = SimCamera(width_px=4096, height_px=4096, pixel_scale_arcsec=2.0)  # 5.2 square degrees
    wcs = tan_wcs(wide, **FIELD)
    galaxies = draw_galaxy_catalogue(np.random.default_rng(3), wcs, faint_mag=22.0, margin_px=0)
    area_deg2 = (4096 * 2.0 / 3600.0) ** 2
    assert np.sum(galaxies.mag < 20.0) / area_deg2 == pytest.approx(1000.0, rel=0.1)
    assert len(galaxies) / area_deg2 == pytest.approx(10 ** (3.0 + 0.45 * 2.0), rel=0.05)
    brighter = galaxies.half_light_arcsec[galaxies.mag < 19.0]
    fainter = galaxies.half_light_arcsec[galaxies.mag > 21.5]
    assert np.median(brighter) > 1.5 * np.median(fainter)


NO_STARS = StarCatalogue(ra_deg=np.zeros(0), dec_deg=np.zeros(0), mag=np.zeros(0))


def one_galaxy(
    centre: SkyCoord, *, mag: float, half_light_arcsec: float, index: float, axis_ratio: float
) -> GalaxyCatalogue:
    """A catalogue of one galaxy at `centre`, its major axis along the frame's +x."""
    return GalaxyCatalogue(
        ra_deg=np.array([centre.ra.deg]),
        dec_deg=np.array([centre.dec.deg]),
        mag=np.array([mag]),
        half_light_arcsec=np.array([half_light_arcsec]),
        sersic_index=np.array([index]),
        axis_ratio=np.array([axis_ratio]),
        position_angle_deg=np.array([0.0]),
    )


def test_a_galaxy_is_an_extended_source_holding_its_flux():
    camera = SMALL.model_copy(update={"cosmic_rays_per_mpx_per_s": 0.0, "hot_pixels_per_mpx": 0.0})
    centre = simulate(camera=camera).wcs.pixel_to_world(256.0, 190.0)
    galaxy = one_galaxy(centre, mag=15.5, half_light_arcsec=4.0, index=1.0, axis_ratio=0.4)
    frame = simulate(camera=camera, stars=NO_STARS, galaxies=galaxy)
    sky_adu = camera.bias_adu + frame.truth.sky_e_per_px / camera.gain_e_per_adu
    pixels = frame.data.astype(np.float64) - sky_adu  # the true sky: a fitted one takes light
    flux, _, _ = sep.sum_circle(pixels, [256.0], [190.0], 60.0)
    expected_e = SMALL.source_electrons(15.5, frame.truth.airmass)  # a clear sky
    assert flux[0] * SMALL.gain_e_per_adu == pytest.approx(expected_e, rel=0.03)
    shape = sep.extract(pixels, 10.0, err=np.std(pixels[:50, :50]), minarea=20)
    largest = shape[np.argmax(shape["npix"])]
    assert largest["a"] > 1.6 * largest["b"]  # a disc at axis ratio 0.4 (the seeing rounds it)
    assert abs(np.cos(largest["theta"])) > 0.9


def test_both_frames_of_a_pair_see_the_same_galaxies_and_hosted_transients_sit_on_them():
    pair = simulate_pair(
        SimCamera(width_px=1024, height_px=1024),
        n_transients=12,
        snr_range=(20.0, 40.0),
        rng=np.random.default_rng(5),
        hosted_fraction=0.5,
    )
    assert pair.new.galaxies is pair.reference.galaxies
    hosted = [t for t in pair.transients if t.host_offset_arcsec is not None]
    assert 3 <= len(hosted) <= 9
    galaxies = pair.new.galaxies
    positions = SkyCoord(galaxies.ra_deg, galaxies.dec_deg, unit="deg")
    for transient in pair.transients:
        here = SkyCoord(transient.ra_deg, transient.dec_deg, unit="deg")
        separation = positions.separation(here).arcsec
        on_a_host = np.any(separation < 3.0 * galaxies.half_light_arcsec)
        assert on_a_host or transient.host_offset_arcsec is None
        if transient.host_offset_arcsec is not None:
            assert np.min(separation) <= transient.host_offset_arcsec + 1e-6


def test_a_transient_on_a_bright_galaxy_needs_more_flux_for_the_same_signal_to_noise():
    camera = SimCamera(width_px=512, height_px=512)
    wcs = tan_wcs(camera, **FIELD)
    centre = wcs.pixel_to_world(256.0, 256.0)
    galaxy = one_galaxy(centre, mag=16.0, half_light_arcsec=3.0, index=4.0, axis_ratio=0.8)

    def one_transient(seed: int, hosted: float) -> InjectedTransient:
        (transient,) = inject_transients(
            np.random.default_rng(seed),
            1,
            (20.0, 20.0),
            CLEAR,
            camera,
            wcs,
            wcs,
            NO_STARS,
            1.0,
            galaxies=galaxy,
            hosted_fraction=hosted,
        )
        return transient

    on_host = [one_transient(seed, 1.0) for seed in range(10)]
    in_the_open = [one_transient(seed, 0.0) for seed in range(10)]
    assert all(t.host_offset_arcsec is not None for t in on_host)
    assert all(t.host_offset_arcsec is None for t in in_the_open)
    sky_limited = np.median([t.flux_e for t in in_the_open])
    excess = np.array([t.flux_e for t in on_host]) / sky_limited
    assert excess.min() > 0.98  # a host only ever adds noise
    assert np.median(excess) > 1.2
    nearest = min(on_host, key=lambda t: t.host_offset_arcsec)
    assert nearest.flux_e == max(t.flux_e for t in on_host)  # the brighter the light under it

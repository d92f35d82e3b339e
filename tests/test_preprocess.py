"""The one frame->tensor preprocessing: shape, robustness, determinism, and that both the whole
frame and the stars at native resolution reach the model."""

import math

import numpy as np
import pytest
from astropy.nddata import block_reduce

from imaging.fits_reader import read_frame
from imaging.gaussian import FWHM_PER_SIGMA
from imaging.preprocess import (
    INPUT_SHAPE,
    PANEL_PX,
    PREPROCESS_VERSION,
    STRETCH_SOFTENING,
    block_mean,
    preprocess_frame,
)
from tests.conftest import REAL_DATA

REAL_FRAMES = sorted(REAL_DATA.glob("*/*.fits"))


def sky(shape, seed=0, level=1000.0, noise=10.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(level, noise, shape).astype(np.float32)


def add_star(image: np.ndarray, row: float, column: float, peak: float, fwhm_px: float) -> None:
    sigma = fwhm_px / FWHM_PER_SIGMA
    rows, columns = np.indices(image.shape)
    image += peak * np.exp(-0.5 * ((rows - row) ** 2 + (columns - column) ** 2) / sigma**2)


def panels(tensor: np.ndarray) -> list[np.ndarray]:
    mosaic = tensor[0]
    return [
        mosaic[:PANEL_PX, :PANEL_PX],
        mosaic[:PANEL_PX, PANEL_PX:],
        mosaic[PANEL_PX:, :PANEL_PX],
        mosaic[PANEL_PX:, PANEL_PX:],
    ]


def assert_valid_input(tensor: np.ndarray) -> None:
    assert tensor.shape == INPUT_SHAPE == (1, 128, 128)
    assert tensor.dtype == np.float32
    assert np.isfinite(tensor).all()
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_version_names_the_preprocessing():
    assert PREPROCESS_VERSION and isinstance(PREPROCESS_VERSION, str)


@pytest.mark.parametrize(
    "shape", [(512, 512), (300, 1000), (1000, 300), (20, 5000), (16, 16), (63, 65), (1031, 777)]
)
def test_any_shape_gives_the_model_input(shape):
    assert_valid_input(preprocess_frame(sky(shape)))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.float64])
def test_integer_and_double_frames_give_what_their_float32_values_give(dtype):
    counts = np.round(sky((300, 400))).astype(dtype)

    tensor = preprocess_frame(counts)

    assert_valid_input(tensor)
    np.testing.assert_allclose(tensor, preprocess_frame(counts.astype(np.float32)), atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 100), (100,), (2, 50, 50)])
def test_arrays_that_are_no_frame_are_refused(shape):
    with pytest.raises(ValueError, match="2-D frame"):
        preprocess_frame(np.ones(shape, np.float32))


def test_nan_and_inf_pixels_are_handled():
    image = sky((400, 400))
    image[::7] = np.nan
    image[:, 100] = np.inf
    image[50:60, 200:260] = -np.inf

    assert_valid_input(preprocess_frame(image))


def test_a_frame_with_a_fully_blank_region_still_shows_its_background():
    image = sky((256, 256))
    image[:128] = np.nan

    overview = panels(preprocess_frame(image))[0]

    assert np.abs(overview).max() < 0.05  # blank blocks are shown as background, not as holes


def test_same_input_gives_identical_output_and_is_not_modified():
    image = sky((700, 900), seed=3)
    add_star(image, 350, 450, 5000.0, 3.0)
    original = image.copy()

    first, second = preprocess_frame(image), preprocess_frame(image.copy())

    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(image, original)


def test_stretch_makes_frames_of_different_sky_level_and_gain_look_the_same():
    image = sky((512, 512), seed=4)
    add_star(image, 256, 256, 3000.0, 4.0)

    brighter_sky_higher_gain = 3.0 * image + 5000.0

    np.testing.assert_allclose(
        preprocess_frame(brighter_sky_higher_gain), preprocess_frame(image), atol=1e-4
    )


def test_background_sits_near_zero_and_bright_stars_do_not_saturate_the_range():
    image = sky((512, 512), seed=5)
    add_star(image, 256, 256, 1e6, 4.0)

    tensor = preprocess_frame(image)

    assert abs(float(np.median(tensor))) < 0.02
    assert 0.5 < tensor.max() <= 1.0


def test_block_mean_equals_astropy_block_reduce():
    image = np.random.default_rng(6).normal(size=(320, 192))

    np.testing.assert_allclose(block_mean(image, 32), block_reduce(image, 32, np.mean), atol=1e-6)


def test_block_mean_averages_partial_edge_blocks_and_ignores_nan():
    image = np.random.default_rng(7).normal(size=(70, 45))
    image[3, 4] = np.nan

    reduced = block_mean(image, 20)

    assert reduced.shape == (4, 3)
    for i, rows in enumerate(range(0, 70, 20)):
        for j, columns in enumerate(range(0, 45, 20)):
            block = image[rows : rows + 20, columns : columns + 20]
            assert reduced[i, j] == pytest.approx(np.nanmean(block), abs=1e-6)


def test_whole_frame_panel_keeps_the_aspect_ratio_padding_with_background():
    image = sky((256, 1024), seed=8)

    overview = panels(preprocess_frame(image))[0]

    # 1024 px wide -> 16 px blocks -> 16 x 64 of frame, centred, the rest is background (0).
    assert np.abs(overview[:24]).max() == 0.0
    assert np.abs(overview[40:]).max() == 0.0
    assert np.abs(overview[24:40]).max() > 0.0


def test_whole_frame_panel_shows_large_scale_structure():
    image = sky((2048, 2048), seed=9)
    image[:, 1024:] += 20.0  # a cloud edge: the right half is 2 sigma brighter

    overview = panels(preprocess_frame(image))[0]

    assert overview[:, 40:].mean() > overview[:, :24].mean() + 0.05


def test_crops_show_stars_at_native_resolution_in_a_large_frame():
    image = sky((2048, 2048), seed=10)
    add_star(image, 1024 + 40, 1024 - 30, 2000.0, 3.0)  # near the centre, off its exact pixel
    add_star(image, 512 + 20, 512 + 50, 2000.0, 6.0)  # near the upper-left quarter point

    centre_crop, quarter_crop = panels(preprocess_frame(image))[1:3]

    for crop, fwhm_px in ((centre_crop, 3.0), (quarter_crop, 6.0)):
        peak_row, peak_column = np.unravel_index(np.argmax(crop), crop.shape)
        assert abs(peak_row - PANEL_PX // 2) <= 1 and abs(peak_column - PANEL_PX // 2) <= 1
        # Native resolution: the star's profile is as wide in the crop as on the sky.
        above_background = np.sinh(crop[peak_row] * math.asinh(STRETCH_SOFTENING))
        above_half = np.count_nonzero(above_background > above_background.max() / 2)
        assert above_half == pytest.approx(fwhm_px, abs=1.5)


def test_crops_pick_stars_over_hot_pixels():
    image = sky((512, 512), seed=11)
    image[250, 260] = 1e5  # a single hot pixel, much brighter than the star's peak
    add_star(image, 270, 240, 3000.0, 4.0)

    centre_crop = panels(preprocess_frame(image))[1]

    rows, columns = np.indices(centre_crop.shape)
    star_pixels = np.hypot(rows - 32, columns - 32) <= 2
    assert centre_crop[star_pixels].min() > 0.3


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.parametrize("path", REAL_FRAMES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_frame_preprocesses(path):
    assert_valid_input(preprocess_frame(read_frame(path).data))

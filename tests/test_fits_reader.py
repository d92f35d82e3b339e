"""Reading FITS frames: physical pixel values, the frame's identity, and a clear refusal of every
kind of broken file, each made for real in a temporary folder."""

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from imaging.fits_reader import FrameError, read_frame
from protos import RejectReason
from tests.conftest import REAL_DATA
from tests.skies import sky_wcs

REAL_FRAMES = sorted(REAL_DATA.glob("*/*.fits"))
NOBODY = 65534


def noisy_image(shape=(64, 80), seed=0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(1000.0, 10.0, shape).astype(dtype)


def write(path: Path, *hdus) -> Path:
    fits.HDUList(list(hdus)).writeto(path)
    return path


# --- frames that read -------------------------------------------------------------------------


def test_uint16_frame_with_bzero_reads_as_its_physical_counts(tmp_path):
    counts = np.random.default_rng(1).integers(0, 65536, (40, 50)).astype(np.uint16)
    path = write(tmp_path / "raw.fits", fits.PrimaryHDU(counts))
    assert fits.getheader(path)["BZERO"] == 32768

    frame = read_frame(path)

    assert frame.data.dtype == np.float32
    assert frame.data.flags.c_contiguous and frame.data.dtype.isnative
    np.testing.assert_array_equal(frame.data, counts.astype(np.float32))
    assert frame.saturation_adu == 65535.0


def test_bscale_and_bzero_give_the_values_astropy_gives(tmp_path):
    hdu = fits.PrimaryHDU(noisy_image(seed=2).astype(np.float64))
    hdu.scale("int16", bscale=0.25, bzero=900.0)
    path = write(tmp_path / "scaled.fits", hdu)

    frame = read_frame(path)

    np.testing.assert_allclose(frame.data, fits.getdata(path), rtol=1e-6)


def test_blank_pixels_of_an_integer_frame_become_nan(tmp_path):
    raw = np.full((32, 32), 500, dtype=np.int16)
    raw[3, 4] = -32768
    raw[10, 10] = 700
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = -32768
    path = write(tmp_path / "blank.fits", hdu)

    data = read_frame(path).data

    assert np.isnan(data[3, 4])
    assert np.isfinite(data).sum() == raw.size - 1


def test_tile_compressed_frame_reads_like_the_uncompressed_one(tmp_path):
    counts = np.random.default_rng(3).integers(0, 30000, (64, 96)).astype(np.int32)
    path = write(tmp_path / "frame.fits.fz", fits.PrimaryHDU(), fits.CompImageHDU(counts))

    frame = read_frame(path)

    np.testing.assert_array_equal(frame.data, counts.astype(np.float32))


def test_fpacked_uint16_camera_frame_reads_its_counts(tmp_path):
    counts = np.random.default_rng(4).integers(0, 65535, (64, 96)).astype(np.uint16)
    path = write(tmp_path / "camera.fits.fz", fits.PrimaryHDU(), fits.CompImageHDU(counts))

    frame = read_frame(path)

    np.testing.assert_array_equal(frame.data, counts.astype(np.float32))


def test_image_in_an_extension_is_found_after_an_empty_primary(tmp_path):
    image = noisy_image(seed=4)
    path = write(tmp_path / "mef.fits", fits.PrimaryHDU(), fits.ImageHDU(image))

    np.testing.assert_array_equal(read_frame(path).data, image)


def test_a_cube_of_one_plane_is_a_2d_image(tmp_path):
    image = noisy_image(seed=5)
    path = write(tmp_path / "plane.fits", fits.PrimaryHDU(image[np.newaxis]))

    np.testing.assert_array_equal(read_frame(path).data, image)


def test_identity_comes_from_the_header_the_wcs_and_the_bytes(tmp_path):
    height, width = 60, 90
    wcs = sky_wcs(width, height)
    header = wcs.to_header()
    header["DATE-OBS"] = "2026-11-24T03:15:00.5"
    header["EXPTIME"] = 45.0
    header["FILTER"] = "r'"
    path = write(
        tmp_path / "night-0001.fits", fits.PrimaryHDU(noisy_image((height, width)), header)
    )

    frame = read_frame(path)
    identity = frame.identity

    assert identity.file_name == "night-0001.fits"
    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity.date_obs == datetime(2026, 11, 24, 3, 15, 0, 500000, tzinfo=UTC)
    assert identity.exptime_s == 45.0
    assert identity.filter == "r'"
    assert (identity.width_px, identity.height_px) == (width, height)
    centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2).icrs
    assert identity.pointing.ra_deg == pytest.approx(centre.ra.deg, abs=1e-6)
    assert identity.pointing.dec_deg == pytest.approx(centre.dec.deg, abs=1e-6)
    assert frame.pixel_scale_arcsec == pytest.approx(0.5)


def test_old_style_date_obs_is_completed_by_time_obs(tmp_path):
    hdu = fits.PrimaryHDU(noisy_image())
    hdu.header["DATE-OBS"] = "26/10/92"
    hdu.header["TIME-OBS"] = "03:04:08"
    path = write(tmp_path / "old.fits", hdu)

    assert read_frame(path).identity.date_obs == datetime(1992, 10, 26, 3, 4, 8, tzinfo=UTC)


def test_frame_without_wcs_or_header_facts_still_reads(tmp_path):
    path = write(tmp_path / "bare.fits", fits.PrimaryHDU(noisy_image()))

    frame = read_frame(path)

    assert frame.wcs is None and frame.pixel_scale_arcsec is None
    assert frame.identity.pointing is None and frame.identity.date_obs is None
    assert frame.identity.exptime_s is None and frame.identity.filter is None


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.parametrize("path", REAL_FRAMES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_frame_reads(path):
    frame = read_frame(path)

    with fits.open(path) as hdul:
        expected = hdul[0].data
    atol = 0.0
    if "OVSCSUB" in frame.header:  # a raw CCD frame: its exposed area less each row's bias
        expected = expected[:, 16:528] - frame.header["OVSCSUB"]  # tests/test_overscan.py
        atol = 10.0  # rows' overscan medians differ from the overall one by a few ADU
    assert frame.data.shape == expected.shape
    np.testing.assert_allclose(frame.data, expected, rtol=1e-6, atol=atol)
    assert frame.identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_real_frames_with_wcs_get_a_pointing_and_pixel_scale(real_data):
    streak = read_frame(real_data / "satellite-streak" / "long.fits")
    decam = read_frame(real_data / "decam-sfft" / "DEC-OBS04a.mini.fits")

    assert streak.pixel_scale_arcsec == pytest.approx(3.04, rel=1e-3)
    assert decam.pixel_scale_arcsec == pytest.approx(0.263, rel=0.01)
    assert decam.identity.pointing is not None
    assert decam.saturation_adu == pytest.approx(46536.1, rel=1e-6)


# --- files that are refused -------------------------------------------------------------------


def _truncated_data(tmp_path: Path) -> Path:
    whole = write(tmp_path / "whole.fits", fits.PrimaryHDU(noisy_image((100, 100))))
    cut = tmp_path / "broken.fits"
    cut.write_bytes(whole.read_bytes()[: 2880 + 1000])
    return cut


def _truncated_header(tmp_path: Path) -> Path:
    whole = write(tmp_path / "whole.fits", fits.PrimaryHDU(noisy_image()))
    cut = tmp_path / "broken.fits"
    cut.write_bytes(whole.read_bytes()[:1000])
    return cut


def _truncated_compressed(tmp_path: Path) -> Path:
    counts = np.random.default_rng(6).integers(0, 30000, (128, 128)).astype(np.int32)
    whole = write(tmp_path / "whole.fits.fz", fits.PrimaryHDU(), fits.CompImageHDU(counts))
    cut = tmp_path / "broken.fits.fz"
    cut.write_bytes(whole.read_bytes()[:-6000])
    return cut


def _corrupt_compressed(tmp_path: Path) -> Path:
    counts = np.random.default_rng(7).integers(0, 30000, (64, 64)).astype(np.int32)
    whole = write(tmp_path / "whole.fits.fz", fits.PrimaryHDU(), fits.CompImageHDU(counts))
    with fits.open(whole, disable_image_compression=True) as hdul:
        table = hdul[1]
        heap_start = table.fileinfo()["datLoc"] + table.header["NAXIS1"] * table.header["NAXIS2"]
    raw = bytearray(whole.read_bytes())
    raw[heap_start : heap_start + 2000] = b"\x07" * 2000
    broken = tmp_path / "broken.fits.fz"
    broken.write_bytes(bytes(raw))
    return broken


def _with_card(
    make: Callable[[Path], Path], card: bytes, replacing: bytes | None = None
) -> Callable[[Path], Path]:
    """A file `make` writes, with the card of the same keyword (or of `replacing`) replaced by
    `card`, as a broken camera or a hand edit leaves it; astropy refuses to write these."""

    def edit(tmp_path: Path) -> Path:
        path = make(tmp_path)
        raw = bytearray(path.read_bytes())
        start = raw.index(replacing or card[:9])
        raw[start : start + 80] = card.ljust(80)
        broken = path.with_name("broken" + "".join(path.suffixes))
        broken.write_bytes(bytes(raw))
        return broken

    return edit


def _compressed(tmp_path: Path) -> Path:
    return write(tmp_path / "whole.fits.fz", fits.PrimaryHDU(), fits.CompImageHDU(noisy_image()))


def _handmade(tmp_path: Path, cards: dict, data_bytes: int) -> Path:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    raw = header.tostring().encode() + b"\0" * data_bytes
    path = tmp_path / "broken.fits"
    path.write_bytes(raw + b"\0" * (-len(raw) % 2880))
    return path


def _table_only(tmp_path: Path) -> Path:
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=[1.0, 2.0])])
    return write(tmp_path / "broken.fits", fits.PrimaryHDU(), table)


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "x.fits"
    path.mkdir()
    return path


def _file_with(content: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "broken.fits"
        path.write_bytes(content)
        return path

    return make


def _image_file(data: np.ndarray) -> Callable[[Path], Path]:
    return lambda tmp_path: write(tmp_path / "broken.fits", fits.PrimaryHDU(data))


BROKEN_FILES: dict[str, tuple[Callable[[Path], Path], RejectReason, str]] = {
    "missing": (lambda p: p / "missing.fits", RejectReason.NOT_A_FILE, "no such file"),
    "directory": (_directory, RejectReason.NOT_A_FILE, "directory"),
    "zero bytes": (_file_with(b""), RejectReason.EMPTY_FILE, "empty"),
    "text file": (_file_with(b"just some notes\n"), RejectReason.NOT_FITS, "not a FITS file"),
    "truncated data": (_truncated_data, RejectReason.TRUNCATED, "truncated"),
    "truncated header": (_truncated_header, RejectReason.TRUNCATED, "truncated"),
    "truncated compressed": (_truncated_compressed, RejectReason.TRUNCATED, "truncated"),
    "corrupt compressed": (_corrupt_compressed, RejectReason.UNREADABLE, "cannot be decoded"),
    "malformed header": (
        lambda p: _handmade(p, {"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": 64}, 0),
        RejectReason.NOT_FITS,
        "NAXIS2",
    ),
    "compressed, ZBITPIX = abc": (
        _with_card(_compressed, b"ZBITPIX = abc"),
        RejectReason.NOT_FITS,
        "ZBITPIX",
    ),
    "compressed, ZBITPIX = 'abc'": (
        _with_card(_compressed, b"ZBITPIX = 'abc'"),
        RejectReason.NOT_FITS,
        "ZBITPIX = 'abc' is not an integer",
    ),
    "BITPIX = 'abc'": (
        _with_card(_image_file(noisy_image()), b"BITPIX  = 'abc'"),
        RejectReason.NOT_FITS,
        "BITPIX = 'abc' is not an integer",
    ),
    "NAXIS1 = 'abc'": (
        _with_card(_image_file(noisy_image()), b"NAXIS1  = 'abc'"),
        RejectReason.NOT_FITS,
        "NAXIS1 = 'abc' is not an integer",
    ),
    "BSCALE = 'abc'": (
        _with_card(_image_file(noisy_image()), b"BSCALE  = 'abc'", replacing=b"EXTEND  ="),
        RejectReason.NOT_FITS,
        "malformed FITS file",
    ),
    "header only": (
        lambda p: write(p / "broken.fits", fits.PrimaryHDU()),
        RejectReason.NO_IMAGE_DATA,
        "no image data",
    ),
    "table only": (_table_only, RejectReason.NO_IMAGE_DATA, "no image data"),
    "3-D cube": (
        _image_file(np.zeros((3, 64, 64), np.float32)),
        RejectReason.BAD_DIMENSIONS,
        "3-D array (64x64x3)",
    ),
    "1-D spectrum": (
        _image_file(np.arange(500, dtype=np.float32)),
        RejectReason.BAD_DIMENSIONS,
        "1-D array",
    ),
    "100000x1": (
        _image_file(np.arange(100_000, dtype=np.float32)[np.newaxis]),
        RejectReason.BAD_DIMENSIONS,
        "100000x1",
    ),
    "10x10": (
        _image_file(noisy_image((10, 10))),
        RejectReason.BAD_DIMENSIONS,
        "at least 16 px",
    ),
    "BITPIX 64": (
        _image_file(np.arange(64 * 64, dtype=np.int64).reshape(64, 64)),
        RejectReason.UNSUPPORTED_BITPIX,
        "BITPIX 64",
    ),
    "BITPIX 24": (
        lambda p: _handmade(
            p, {"SIMPLE": True, "BITPIX": 24, "NAXIS": 2, "NAXIS1": 32, "NAXIS2": 32}, 32 * 32 * 3
        ),
        RejectReason.UNSUPPORTED_BITPIX,
        "BITPIX 24",
    ),
    "all NaN": (
        _image_file(np.full((64, 64), np.nan, np.float32)),
        RejectReason.ALL_NAN,
        "NaN",
    ),
    "constant": (
        _image_file(np.full((64, 64), 7.0, np.float32)),
        RejectReason.ALL_NAN,
        "same value 7",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_file_is_refused_with_its_reason_and_one_line_naming_it(tmp_path, case):
    make, reason, words = BROKEN_FILES[case]
    path = make(tmp_path)

    with pytest.raises(FrameError) as caught:
        read_frame(path)

    error = caught.value
    assert error.reason == reason
    assert words in error.message
    assert str(error).startswith(f"{path}: ")
    assert "\n" not in str(error)


def test_a_frame_whose_name_is_not_utf8_goes_on_the_wire_under_a_printable_name(tmp_path):
    path = write(tmp_path / os.fsdecode(b"bad_\xff.fits"), fits.PrimaryHDU(noisy_image()))
    assert os.fsencode(path.name) == b"bad_\xff.fits"

    identity = read_frame(path).identity

    assert identity.file_name == "bad_\\xff.fits"
    assert '"file_name":"bad_\\\\xff.fits"' in identity.model_dump_json()


def test_a_refused_file_with_a_newline_in_its_name_is_named_on_one_line(tmp_path):
    path = tmp_path / "x\nALERT bad frame site=a.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b" " * 50)

    with pytest.raises(FrameError) as caught:
        read_frame(path)

    assert caught.value.path == path  # the real file, to be quarantined
    assert str(caught.value).startswith(f"{tmp_path}/x\\nALERT bad frame site=a.fits: ")
    assert "\n" not in str(caught.value)


def test_frame_above_the_pixel_limit_is_refused_before_reading(tmp_path):
    path = write(tmp_path / "big.fits", fits.PrimaryHDU(noisy_image((100, 100))))

    with pytest.raises(FrameError) as caught:
        read_frame(path, max_pixels=9_999)

    assert caught.value.reason == RejectReason.TOO_LARGE
    assert read_frame(path, max_pixels=10_000).data.shape == (100, 100)


def test_nan_speckled_frame_is_not_all_nan(tmp_path):
    image = noisy_image((64, 64))
    image[::2] = np.nan
    path = write(tmp_path / "speckled.fits", fits.PrimaryHDU(image))

    assert np.isnan(read_frame(path).data).sum() == image.size // 2


def _reason_reading_as(uid: int, path: Path) -> str:
    """The outcome of `read_frame(path)` in a forked child running with effective user `uid`."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, read, report, exit without running pytest's teardown
        try:
            os.setegid(uid)
            os.seteuid(uid)
            read_frame(path)
            outcome = "read"
        except FrameError as error:
            outcome = error.reason.value
        except BaseException as exc:
            outcome = f"unexpected {exc!r}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read().decode()


def test_file_without_read_permission_is_unreadable():
    # Tests run as root in CI, where permissions do not block reading: check as `nobody`.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = write(Path(folder) / "locked.fits", fits.PrimaryHDU(noisy_image()))
        path.chmod(0)
        assert stat.S_IMODE(path.stat().st_mode) == 0
        if os.geteuid() == 0:
            assert read_frame(path).data.shape == (64, 80)  # root reads it regardless
            assert _reason_reading_as(NOBODY, path) == RejectReason.UNREADABLE.value
        else:
            with pytest.raises(FrameError) as caught:
                read_frame(path)
            assert caught.value.reason == RejectReason.UNREADABLE

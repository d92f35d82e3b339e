"""Judging a FITS file whole from its headers: every layout a camera writes is complete once
written, every cut is incomplete with the bytes it still needs, and what is not FITS is left for
the reader."""

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from imaging.fits_completeness import (
    FITS_BLOCK_BYTES,
    Completeness,
    FitsCompleteness,
    file_completeness,
    fits_completeness,
)


def _image(shape: tuple[int, int] = (100, 120), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(1000.0, 10.0, shape).astype(np.float32)


def _bytes_of(*hdus: fits.hdu.base.ExtensionHDU | fits.PrimaryHDU) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buffer)
    return buffer.getvalue()


def _judge(content: bytes) -> FitsCompleteness:
    return fits_completeness(io.BytesIO(content), len(content))


PRIMARY_ONLY = _bytes_of(fits.PrimaryHDU(_image()))
WITH_EXTENSION = _bytes_of(fits.PrimaryHDU(), fits.ImageHDU(_image(seed=1)))
TILE_COMPRESSED = _bytes_of(fits.PrimaryHDU(), fits.CompImageHDU(_image(seed=2)))
IMAGE_AND_TABLE = _bytes_of(
    fits.PrimaryHDU(_image(seed=3)),
    fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.arange(5.0))]),
)


@pytest.mark.parametrize(
    "content",
    [PRIMARY_ONLY, WITH_EXTENSION, TILE_COMPRESSED, IMAGE_AND_TABLE],
    ids=["primary only", "image extension", "tile-compressed", "image and table"],
)
def test_a_whole_file_is_complete(content):
    assert _judge(content).verdict is Completeness.COMPLETE


def test_a_whole_file_on_disk_is_complete_and_astropy_agrees(tmp_path):
    path = tmp_path / "frame.fits.fz"
    path.write_bytes(TILE_COMPRESSED)

    assert file_completeness(path).complete
    with fits.open(path) as hdul:
        assert hdul[1].data.shape == (100, 120)


@pytest.mark.parametrize(
    "content",
    [PRIMARY_ONLY, WITH_EXTENSION, TILE_COMPRESSED],
    ids=["primary only", "image extension", "tile-compressed"],
)
def test_every_cut_of_a_file_is_incomplete_and_says_what_it_needs(content):
    for size in range(0, len(content), 997):  # cuts in headers, data and padding alike
        judged = _judge(content[:size])
        assert judged.verdict is Completeness.INCOMPLETE, size
        assert size < judged.needed_bytes <= len(content)
        assert f"has {size}" in judged.detail


def test_a_file_cut_in_the_middle_of_the_header_needs_the_rest_of_it():
    judged = _judge(PRIMARY_ONLY[:1000])

    assert judged.verdict is Completeness.INCOMPLETE
    assert judged.needed_bytes == FITS_BLOCK_BYTES
    assert "header" in judged.detail


def test_a_file_cut_in_the_middle_of_the_data_needs_all_of_its_data():
    data_bytes = 100 * 120 * 4
    judged = _judge(PRIMARY_ONLY[: FITS_BLOCK_BYTES + 5000])

    assert judged.verdict is Completeness.INCOMPLETE
    assert judged.needed_bytes == FITS_BLOCK_BYTES + data_bytes
    assert f"expected at least {FITS_BLOCK_BYTES + data_bytes} bytes, has" in judged.detail


def test_a_cut_extension_header_is_incomplete_though_the_primary_is_whole():
    judged = _judge(WITH_EXTENSION[: FITS_BLOCK_BYTES + 40])

    assert judged.verdict is Completeness.INCOMPLETE
    assert "HDU 1 header" in judged.detail


def test_data_without_its_final_padding_is_complete_as_astropy_reads_it(tmp_path):
    data_end = FITS_BLOCK_BYTES + 100 * 120 * 4
    assert len(PRIMARY_ONLY) > data_end  # the last block is padded out
    path = tmp_path / "unpadded.fits"
    path.write_bytes(PRIMARY_ONLY[:data_end])

    assert file_completeness(path).complete
    with pytest.warns(Warning), fits.open(path) as hdul:
        assert hdul[0].data.shape == (100, 120)


def test_a_file_stopped_inside_its_final_padding_is_still_being_written():
    judged = _judge(PRIMARY_ONLY[: FITS_BLOCK_BYTES + 100 * 120 * 4 + 10])

    assert judged.verdict is Completeness.INCOMPLETE
    assert judged.needed_bytes == len(PRIMARY_ONLY)


def test_an_empty_primary_announcing_extensions_waits_for_the_first_one():
    judged = _judge(TILE_COMPRESSED[:FITS_BLOCK_BYTES])

    assert judged.verdict is Completeness.INCOMPLETE
    assert "first extension" in judged.detail


def test_bytes_after_the_last_hdu_that_start_no_extension_are_left_to_the_reader():
    assert _judge(PRIMARY_ONLY + b"\0" * FITS_BLOCK_BYTES).complete


@pytest.mark.parametrize(
    "content",
    [
        b"this is a text file, not an image\n" * 100,
        b"\x89PNG\r\n\x1a\n" + b"\0" * 4000,
        b"\0" * FITS_BLOCK_BYTES,
    ],
    ids=["text", "png", "zeros"],
)
def test_bytes_that_are_not_fits_are_left_to_the_reader(content):
    judged = _judge(content)

    assert judged.verdict is Completeness.NOT_FITS
    assert "SIMPLE" in judged.detail


def test_a_header_with_a_structural_card_that_is_not_a_number_is_not_fits():
    raw = bytearray(PRIMARY_ONLY)
    start = raw.index(b"BITPIX  =")
    raw[start : start + 80] = b"BITPIX  = 'abc'".ljust(80)

    judged = _judge(bytes(raw))

    assert judged.verdict is Completeness.NOT_FITS
    assert judged.detail == "HDU 0: BITPIX = 'abc' is not an integer"


def test_the_start_of_the_signature_is_a_file_just_begun():
    assert _judge(b"").verdict is Completeness.INCOMPLETE
    assert _judge(b"SIMP").verdict is Completeness.INCOMPLETE


def test_judging_reads_headers_only(tmp_path):
    big = _bytes_of(fits.PrimaryHDU(np.zeros((2048, 2048), np.float32)))
    stream = _CountingReader(big)

    assert fits_completeness(stream, len(big)).complete
    assert stream.bytes_read <= 2 * FITS_BLOCK_BYTES


class _CountingReader(io.BytesIO):
    """A stream that counts the bytes read from it."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_file_that_cannot_be_read_raises(tmp_path: Path):
    with pytest.raises(OSError):
        file_completeness(tmp_path / "missing.fits")

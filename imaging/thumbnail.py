"""A frame's thumbnail for the console's frame browser: the image binned down to at most
`THUMBNAIL_SIDE_PX` on its longer side, asinh-stretched between z-scale limits (astropy's, as
DS9 shows a frame), as an 8-bit greyscale PNG in base64 (`FrameScore.thumbnail_png_b64`).

The PNG is written here (a dozen lines of `zlib`), so the site needs no imaging library."""

import base64
import struct
import zlib

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

from protos.frames import THUMBNAIL_MAX_CHARS

THUMBNAIL_SIDE_PX = 96
"""Longer side of a thumbnail (pixels): enough to see clouds, trails and defocus at a glance."""
ASINH_A = 0.1
"""Where the asinh stretch turns from linear to logarithmic (fraction of the range): faint
sky visible, bright stars not blown out."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GREYSCALE_8BIT = (8, 0, 0, 0, 0)
"""IHDR after the size: bit depth 8, colour type 0 (greyscale), deflate, no filter, no interlace."""


def binned(data: np.ndarray, side_px: int = THUMBNAIL_SIDE_PX) -> np.ndarray:
    """The image averaged over square blocks so that its longer side is at most `side_px`
    (NaN pixels left out of each block's mean)."""
    height, width = data.shape[-2:]
    block = max(1, int(np.ceil(max(height, width) / side_px)))
    rows, columns = height // block, width // block
    trimmed = np.asarray(data, dtype=np.float32)[: rows * block, : columns * block]
    blocks = trimmed.reshape(rows, block, columns, block)
    finite = np.isfinite(blocks)
    counts = finite.sum(axis=(1, 3))
    sums = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def png_greyscale(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale image (rows top first) as PNG bytes."""
    height, width = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = np.hstack([np.zeros((height, 1), np.uint8), pixels.astype(np.uint8)])  # filter 0
    header = struct.pack(">II5B", width, height, *PNG_GREYSCALE_8BIT)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def thumbnail_png_b64(data: np.ndarray) -> str | None:
    """The frame's thumbnail as base64 PNG, north (the last FITS row) up; None when the image
    has no finite pixel."""
    small = binned(data)
    finite = np.isfinite(small)
    if not finite.any():
        return None
    filled = np.where(finite, small, np.nanmedian(small))
    normalise = ImageNormalize(filled, interval=ZScaleInterval(), stretch=AsinhStretch(ASINH_A))
    scaled = np.clip(np.nan_to_num(np.asarray(normalise(filled)), nan=0.0), 0.0, 1.0)
    encoded = base64.b64encode(png_greyscale(np.round(scaled[::-1] * 255.0))).decode("ascii")
    return encoded if len(encoded) <= THUMBNAIL_MAX_CHARS else None

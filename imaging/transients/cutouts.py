"""Stamps around candidates: new, reference and difference cutouts, and their wire encoding.

A cutout is always `CUTOUT_SIDE_PX` square and centred on the candidate's nearest pixel; parts
beyond the image edge are NaN, so a stamp's geometry never depends on where it was cut.
"""

import numpy as np

from protos import EncodedArray, TransientCutouts

CUTOUT_SIDE_PX = 31


def cutout(image: np.ndarray, x: float, y: float, side: int = CUTOUT_SIDE_PX) -> np.ndarray:
    """A `side` x `side` float32 stamp centred on pixel (round(x), round(y)), NaN-padded."""
    half = side // 2
    stamp = np.full((side, side), np.nan, dtype=np.float32)
    x0, y0 = round(x) - half, round(y) - half
    height, width = image.shape
    lo_x, lo_y = max(x0, 0), max(y0, 0)
    hi_x, hi_y = min(x0 + side, width), min(y0 + side, height)
    if lo_x < hi_x and lo_y < hi_y:
        stamp[lo_y - y0 : hi_y - y0, lo_x - x0 : hi_x - x0] = image[lo_y:hi_y, lo_x:hi_x]
    return stamp


def triplet(
    new: np.ndarray, reference: np.ndarray, difference: np.ndarray, x: float, y: float
) -> np.ndarray:
    """The three stamps of one candidate as `[3, side, side]` (new, reference, difference)."""
    return np.stack([cutout(image, x, y) for image in (new, reference, difference)])


def encode(stamp: np.ndarray) -> EncodedArray:
    """One stamp as the contract's little-endian float32 encoding."""
    data = np.ascontiguousarray(stamp, dtype="<f4")
    return EncodedArray.from_raw((int(data.shape[0]), int(data.shape[1])), data.tobytes())


def decode(array: EncodedArray) -> np.ndarray:
    """The stamp an `EncodedArray` holds."""
    return np.frombuffer(array.raw(), dtype="<f4").reshape(array.shape)


def encode_triplet(stamps: np.ndarray) -> TransientCutouts:
    """A `[3, side, side]` triplet as the contract's `TransientCutouts`."""
    return TransientCutouts(
        new=encode(stamps[0]), reference=encode(stamps[1]), difference=encode(stamps[2])
    )

"""Satellite and aircraft trails: straight lines across the frame, counted with a Hough transform.

One trail makes a frame medium and two make it bad (`QualityThresholds.satellite_trails`). The
CNN sees trails too, but counting them in a 64x64 view of the whole frame is hard, so the site
also counts them on the pixels, and the count floors the verdict like photometry does:

1. the frame is block-averaged to at most `BINNED_MAX_PX` pixels a side (a trail runs along
   the blocks and gains signal-to-noise, stars shrink) and its background subtracted
   (`sep.Background`); pixels above `THRESHOLD_SIGMA` of the background noise are lit, except
   in columns that hold saturated pixels (charge bleeds along them in straight lines);
2. connected groups of lit pixels that are not elongated (axis ratio below
   `MIN_AXIS_RATIO` from their second moments) or short (under `MIN_GROUP_EXTENT_PX`) are
   stars, galaxies or cosmic rays, and are dropped; of a group as long as a trail only its
   thin pixels are kept, whatever its shape (crossing trails make one X-shaped group);
3. the remaining pixels vote for lines (angle in `ANGLE_STEP_DEG` steps, distance in bands of
   three pixels); the strongest line counts when it holds `MIN_LINE_FRACTION` of the binned
   frame's short side, its pixels (within `LINE_HALF_WIDTH_PX`) are removed, and the vote is
   repeated.

Stars trailed far beyond the bad limit can line up into a "trail" of their own; such a frame is
bad anyway. On 512 px and larger simulated frames no other frame was given a trail it did not
have; on 256 px frames a few were, so frames under `MIN_FRAME_PX` are not counted
(docs/quality-model.md).
"""

import math

import numpy as np
import sep
from scipy import ndimage

MIN_FRAME_PX = 384
"""On smaller frames (256x256 px) stars and noise make or break too many lines: the model alone
judges their trails."""
BINNED_MAX_PX = 192
THRESHOLD_SIGMA = 2.0
MIN_GROUP_EXTENT_PX = 12.0
MIN_AXIS_RATIO = 3.0
ANGLE_STEP_DEG = 0.5
MIN_LINE_FRACTION = 0.35
LINE_HALF_WIDTH_PX = 5.0
MAX_TRAILS = 8
THIN_WINDOW_PX = 7
MAX_THIN_FILL = 0.5
"""A pixel of a large group is thin (part of a line, not of a blob such as a cloud's edge) when
under this share of the `THIN_WINDOW_PX` square around it is lit."""
BACKGROUND_BOX_PX = 32
SATURATED_FRACTION = 0.8
"""Pixels above this share of the saturation level mark a bleeding column."""


def count_trails(data: np.ndarray, saturation_adu: float) -> int | None:
    """The number of straight trails crossing the frame (at most `MAX_TRAILS`); None for a
    frame smaller than `MIN_FRAME_PX` on a side, where the count is not reliable."""
    if min(data.shape) < MIN_FRAME_PX:
        return None
    binned, bleeding = _binned(data, saturation_adu)
    background = sep.Background(binned, bw=BACKGROUND_BOX_PX, bh=BACKGROUND_BOX_PX)
    lit = (binned - background.back()) > THRESHOLD_SIGMA * background.globalrms
    for column in np.flatnonzero(bleeding):
        lit[:, max(column - 1, 0) : column + 2] = False
    rows, columns = _line_like_pixels(lit)
    return _count_lines(columns, rows, lit.shape)


def _binned(data: np.ndarray, saturation_adu: float) -> tuple[np.ndarray, np.ndarray]:
    """The block-averaged frame (C-contiguous float32) and which of its columns bleed."""
    height, width = data.shape
    factor = max(1, math.ceil(max(height, width) / BINNED_MAX_PX))
    rows, columns = height // factor, width // factor
    cropped = data[: rows * factor, : columns * factor]
    binned = cropped.reshape(rows, factor, columns, factor).mean(axis=(1, 3), dtype=np.float32)
    blank = ~np.isfinite(binned)  # a block with a NaN pixel takes the frame's typical level
    if blank.any():
        binned[blank] = np.nanmedian(binned) if not blank.all() else 0.0
    saturated = (cropped >= SATURATED_FRACTION * saturation_adu).any(axis=0)
    bleeding = saturated.reshape(columns, factor).any(axis=1)
    return np.ascontiguousarray(binned, dtype=np.float32), np.asarray(bleeding)


def _line_like_pixels(lit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the lit pixels that belong to long, thin groups, and the thin pixels
    of groups as large as a trail (trails that cross make one group shaped like an X, which
    is not elongated as a whole)."""
    labels, groups = ndimage.label(lit, structure=np.ones((3, 3)))
    keep = np.zeros(groups + 1, dtype=bool)
    large = np.zeros(groups + 1, dtype=bool)
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        extent = math.hypot(window[0].stop - window[0].start, window[1].stop - window[1].start)
        if extent < MIN_GROUP_EXTENT_PX:
            continue
        large[index] = extent >= MIN_LINE_FRACTION * min(lit.shape)
        ys, xs = np.nonzero(labels[window] == index)
        small, big = np.linalg.eigvalsh(np.cov(np.vstack([xs, ys]).astype(float)))
        keep[index] = big >= MIN_AXIS_RATIO**2 * max(small, 0.25)
    fill = ndimage.uniform_filter(lit.astype(np.float32), size=THIN_WINDOW_PX)
    thin = fill < MAX_THIN_FILL
    rows, columns = np.nonzero(keep[labels] | (large[labels] & thin))
    return rows, columns


def _count_lines(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> int:
    """Lines holding enough of the pixels (x, y), found one at a time and removed."""
    x, y = x.astype(float), y.astype(float)
    diagonal = math.hypot(*shape)
    bins = int(2 * diagonal) + 2
    needed = MIN_LINE_FRACTION * min(shape)
    angles = np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP_DEG))
    trails = 0
    while len(x) and trails < MAX_TRAILS:
        votes, angle, distance = 0, 0.0, 0.0
        for theta in angles:
            rho = x * math.cos(theta) + y * math.sin(theta)
            histogram = np.bincount(np.round(rho + diagonal).astype(int), minlength=bins)
            band = histogram[:-2] + histogram[1:-1] + histogram[2:]
            best = int(np.argmax(band))
            if band[best] > votes:
                votes, angle, distance = int(band[best]), theta, best + 1 - diagonal
        if votes < needed:
            break
        trails += 1
        away = np.abs(x * math.cos(angle) + y * math.sin(angle) - distance) > LINE_HALF_WIDTH_PX
        x, y = x[away], y[away]
    return trails

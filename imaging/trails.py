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
   three pixels); the strongest line is a candidate when it holds `MIN_LINE_FRACTION` of the
   binned frame's short side, its pixels (within `LINE_HALF_WIDTH_PX`) are removed, and the
   vote is repeated (at most `MAX_CANDIDATES` times);
4. a candidate counts only if it is a line of light, not a row of blobs: refitted to its own
   pixels, the frame is sampled along it and beside it (`SIDE_OFFSETS_PX` on each side), each
   line summarised by its running lower quartile over `RUN_WINDOW_PX` (`RUN_PERCENTILE`), and
   the line must stand `RUN_SIGNIFICANCE` sigma of that quartile's noise above *both* sides
   over a continuous stretch of `MIN_LINE_FRACTION` of the short side (gaps up to
   `MAX_GAP_PX`), or over most of its length where it only cuts a corner. A satellite raises
   every pixel of its path; stars in a row, a crowded field's chance alignments and elongated
   galaxies raise some of them, which the quartile ignores, and a step in the sky (a frame's
   edge, a cloud's) is brighter than one side only. A counted trail is blanked before the next
   candidate is checked (and bridged where that one crosses it), so a near-parallel line
   cannot count it twice. Without this step a dense star field (15000 stars on a 1024 px
   frame) counted 8 trails and fields of elongated galaxies 1-3; with it, none.

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
MAX_CANDIDATES = 12
SIDE_OFFSETS_PX = (4.0, 5.0, 6.0)
RUN_WINDOW_PX = 15
RUN_PERCENTILE = 25
RUN_SIGNIFICANCE = 3.0
MAX_GAP_PX = 5
CORNER_LIT_FRACTION = 0.8
MIN_CHORD_FRACTION = 0.15
"""A line that cuts a corner of the frame counts when it is lit over 80 % of its length there,
if that is at least 15 % of the short side."""
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
    excess = binned - background.back()
    return _count_lines(columns, rows, excess, float(background.globalrms))


def _binned(data: np.ndarray, saturation_adu: float) -> tuple[np.ndarray, np.ndarray]:
    """The block-averaged frame (C-contiguous float32) and which of its columns bleed."""
    height, width = data.shape
    factor = max(1, math.ceil(max(height, width) / BINNED_MAX_PX))
    rows, columns = height // factor, width // factor
    cropped = data[: rows * factor, : columns * factor]
    # Whole rows summed first (contiguous adds), then the columns of the few rows left: 2.5x
    # faster than a mean over both block axes at once.
    row_sums = cropped.reshape(rows, factor, columns * factor).sum(axis=1, dtype=np.float32)
    binned = row_sums.reshape(rows, columns, factor).sum(axis=2) / np.float32(factor * factor)
    blank = ~np.isfinite(binned)  # a block with a NaN pixel takes the frame's typical level
    if blank.any():
        binned[blank] = np.nanmedian(binned) if not blank.all() else 0.0
    # A column's brightest pixel (NaN ignored) tells whether it bleeds, at a third of the cost
    # of comparing every pixel.
    saturated = np.fmax.reduce(cropped, axis=0) >= SATURATED_FRACTION * saturation_adu
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


def _count_lines(x: np.ndarray, y: np.ndarray, excess: np.ndarray, noise: float) -> int:
    """Lines holding enough of the pixels (x, y), found one at a time and removed, that are
    lines of light in `excess` (the background-subtracted binned frame)."""
    x, y = x.astype(float), y.astype(float)
    shape = excess.shape
    diagonal = math.hypot(*shape)
    bins = int(2 * diagonal) + 2
    needed = MIN_LINE_FRACTION * min(shape)
    angles = np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP_DEG))
    trails = 0
    counted = np.zeros(shape, dtype=bool)
    for _ in range(MAX_CANDIDATES):
        if not len(x) or trails >= MAX_TRAILS:
            break
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
        near = np.abs(x * math.cos(angle) + y * math.sin(angle) - distance) <= LINE_HALF_WIDTH_PX
        line = _refined_line(x[near], y[near], angle, distance)
        if is_line_of_light(excess, noise, *line, counted=counted):
            trails += 1
            # Blanked, so that a near-parallel candidate cannot count it again; where a later
            # trail crosses it, the blank is bridged.
            counted |= _line_mask(shape, *line)
            excess = np.where(counted, 0.0, excess)
        x, y = x[~near], y[~near]
    return trails


def _line_mask(shape: tuple[int, ...], angle: float, distance: float) -> np.ndarray:
    """The pixels within `LINE_HALF_WIDTH_PX` of the line."""
    rows, columns = np.indices(shape)
    offset = columns * math.cos(angle) + rows * math.sin(angle) - distance
    return np.asarray(np.abs(offset) <= LINE_HALF_WIDTH_PX)


def _refined_line(
    x: np.ndarray, y: np.ndarray, angle: float, distance: float
) -> tuple[float, float]:
    """The line through the candidate's pixels by total least squares, as (angle, distance)
    of its normal; the Hough line where they are too few."""
    if len(x) < 3:
        return angle, distance
    points = np.vstack([x - x.mean(), y - y.mean()])
    _, vectors = np.linalg.eigh(points @ points.T)
    normal = vectors[:, 0]
    refined = math.atan2(normal[1], normal[0])
    return refined, float(x.mean() * normal[0] + y.mean() * normal[1])


def is_line_of_light(
    excess: np.ndarray,
    noise: float,
    angle: float,
    distance: float,
    counted: np.ndarray | None = None,
) -> bool:
    """Whether the line (normal at `angle`, `distance` from the origin) is brighter than its
    sides over a continuous stretch of `MIN_LINE_FRACTION` of the frame's short side; where
    it crosses a trail already `counted` (blanked in `excess`) the stretch is bridged."""
    height, width = excess.shape
    normal = np.array([math.cos(angle), math.sin(angle)])
    along = np.array([-normal[1], normal[0]])
    reach = math.hypot(height, width)
    steps = np.arange(-reach, reach, 1.0)
    centre = distance * normal
    points = centre[:, np.newaxis] + along[:, np.newaxis] * steps[np.newaxis, :]
    margin = max(SIDE_OFFSETS_PX) + 1
    inside = (points[0] >= margin) & (points[0] <= width - 1 - margin)
    inside &= (points[1] >= margin) & (points[1] <= height - 1 - margin)
    points = points[:, inside]
    if points.shape[1] < RUN_WINDOW_PX:
        return False

    def sampled(offset: float) -> np.ndarray:
        shifted = points + offset * normal[:, np.newaxis]
        return np.asarray(ndimage.map_coordinates(excess, shifted[::-1], order=1))

    def running_low(values: np.ndarray) -> np.ndarray:
        return np.asarray(
            ndimage.percentile_filter(values, RUN_PERCENTILE, size=RUN_WINDOW_PX, mode="nearest")
        )

    # Each line by a low percentile along itself: a satellite raises every sample of its
    # line, stars (even lined up, even crowded) only some, which this ignores. The line must
    # then be brighter than each of its sides, taken the same way (a step in the sky, at a
    # frame's edge or a cloud's, is brighter than one side only).
    on_line = running_low(np.mean([sampled(offset) for offset in (-0.5, 0.0, 0.5)], axis=0))
    left, right = (
        np.median([running_low(sampled(side * offset)) for offset in SIDE_OFFSETS_PX], axis=0)
        for side in (-1, 1)
    )
    # Noise of a quartile over the window (about 1.36 sigma / sqrt(n)), and of the difference
    # with the median of three of them.
    quartile_noise = 1.36 * noise / math.sqrt(RUN_WINDOW_PX)
    threshold = RUN_SIGNIFICANCE * quartile_noise * math.sqrt(1 + 1.57 / 3)
    running = on_line - np.maximum(left, right)
    crossing = np.zeros(len(running), dtype=bool)
    if counted is not None and counted.any():
        reach_px = max(SIDE_OFFSETS_PX) + RUN_WINDOW_PX // 2
        crossing = ndimage.binary_dilation(
            ndimage.map_coordinates(counted.astype(np.float32), points[::-1], order=0) > 0,
            structure=np.ones(2 * int(reach_px) + 1, dtype=bool),
        )
    lit_length = _longest_run(running > threshold, crossing)
    # A trail crosses the whole frame, so one that cuts a corner is as long as the corner.
    chord = len(running)
    needed = min(MIN_LINE_FRACTION * min(height, width), CORNER_LIT_FRACTION * chord)
    return chord >= MIN_CHORD_FRACTION * min(height, width) and lit_length >= needed


def _longest_run(lit: np.ndarray, bridge: np.ndarray) -> int:
    """The most `lit` samples in one stretch of lit or `bridge` samples, gaps of up to
    `MAX_GAP_PX` bridged too."""
    joined = lit | bridge
    joined |= ndimage.binary_closing(joined, structure=np.ones(MAX_GAP_PX + 1, dtype=bool))
    labels, count = ndimage.label(joined)
    if not count:
        return 0
    return int(np.bincount(labels, weights=lit.astype(float))[1:].max())

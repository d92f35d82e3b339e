"""Detections strung along a straight line: a satellite or aircraft trail broken into pieces.

A trail too faint to be one long blob on the difference breaks into a row of PSF-sized peaks,
each of which looks like a point source in its own cutout (a frame of the bench gave 26 false
candidates at real/bogus 0.9 from one trail). `on_lines` finds the detections that share a line
by a Hough vote over their positions: every detection votes, at each angle, for the band of
width `2 * tolerance` its distance from the origin falls in (and the band next to it, so a line
on a band's edge is not split); a band with `MIN_CHAIN` votes or more is a trail, and every
detection within `tolerance` of its line is on it if it belongs to a run of `MIN_CHAIN` pieces or
more that follow each other closely along the line. On 40 simulated 1024² pairs (~100
detections each) the two trails were found whole, and without the closeness rule four pairs
lost chance alignments of six detections that were no trail.
"""

import numpy as np

MIN_CHAIN = 6
MAX_GAP_PX = 100.0
"""Pieces of one trail follow each other closely; a chain's neighbours along the line are at
most this far apart (chance alignments across the whole frame are not chains)."""
ANGLE_STEP_DEG = 0.2
"""Fine enough that a trail across 1024 px stays within 1.8 px of one of the lines tried."""


def on_lines(x: np.ndarray, y: np.ndarray, tolerance_px: float) -> np.ndarray:
    """A mask of the detections at (x, y) that lie, `MIN_CHAIN` or more together and no more
    than `MAX_GAP_PX` apart, within `tolerance_px` of one straight line."""
    on = np.zeros(len(x), dtype=bool)
    if len(x) < MIN_CHAIN:
        return on
    angles = np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP_DEG))
    cos, sin = np.cos(angles), np.sin(angles)
    rho = np.outer(x, cos) + np.outer(y, sin)  # distance of the line through each point
    along = np.outer(y, cos) - np.outer(x, sin)  # position of each point along that line
    width = 2.0 * tolerance_px
    for offset in (0.0, 0.5):  # bands, and bands shifted by half a width
        band = np.floor(rho / width + offset).astype(np.int64)
        for angle in range(len(angles)):
            bands, counts = np.unique(band[:, angle], return_counts=True)
            for crowded in bands[counts >= MIN_CHAIN]:
                centre = (crowded + 0.5 - offset) * width
                members = np.flatnonzero(np.abs(rho[:, angle] - centre) <= tolerance_px)
                on[_chained(members, along[members, angle])] = True
    return on


def _chained(members: np.ndarray, along: np.ndarray) -> np.ndarray:
    """The members that belong to runs of `MIN_CHAIN` or more, each within `MAX_GAP_PX` of the
    next along the line."""
    order = np.argsort(along)
    breaks = np.flatnonzero(np.diff(along[order]) > MAX_GAP_PX) + 1
    runs = np.split(members[order], breaks)
    return np.concatenate([run for run in runs if len(run) >= MIN_CHAIN] or [members[:0]])

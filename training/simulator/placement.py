"""Putting charge on a pixel grid at sub-pixel positions: bilinear splats and stamp adds."""

import numpy as np


def splat_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> None:
    """Add `weight` at each (x, y), shared over the four nearest pixels; outside is dropped."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    height, width = image.shape
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            rows, cols = y0 + dy, x0 + dx
            inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
            np.add.at(image, (rows[inside], cols[inside]), (weight * wx * wy)[inside])


def add_stamp(image: np.ndarray, stamp: np.ndarray, row: int, col: int) -> None:
    """Add a square stamp centred on pixel (row, col), cut at the image edges."""
    radius = stamp.shape[0] // 2
    height, width = image.shape
    top, left = row - radius, col - radius
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + stamp.shape[0], height), min(left + stamp.shape[1], width)
    if y0 < y1 and x0 < x1:
        image[y0:y1, x0:x1] += stamp[y0 - top : y1 - top, x0 - left : x1 - left]

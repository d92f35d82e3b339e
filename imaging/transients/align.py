"""Astrometric alignment: an affine map from new-frame pixels to reference pixels, and resampling.

The first guess comes from the two WCS solutions (fitted as an affine map on a grid of points);
it is then refined on the stars both images share (star-pattern matching around the WCS guess),
so a WCS that is off by a few pixels still gives a sub-pixel alignment. The reference is
resampled onto the new frame's pixel grid (bilinear), so candidates live in new-frame pixels
and take the new frame's WCS.
"""

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage
from scipy.spatial import cKDTree

from imaging.gaussian import MAD_TO_SIGMA

GRID_POINTS = 9
MIN_MATCHES_FOR_AFFINE = 20
MIN_MATCHES_FOR_SHIFT = 2


class AlignmentError(ValueError):
    """Two frames that cannot be put on one pixel grid; the message says why."""


@dataclass(frozen=True)
class PixelTransform:
    """ref_xy = matrix @ new_xy + offset (pixel positions 0-based, x = column)."""

    matrix: np.ndarray
    offset: np.ndarray

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """Map (n, 2) new-frame positions to reference positions."""
        return np.asarray(xy) @ self.matrix.T + self.offset

    def inverse(self) -> "PixelTransform":
        """The map from reference pixels back to new-frame pixels."""
        inverse = np.linalg.inv(self.matrix)
        return PixelTransform(matrix=inverse, offset=-inverse @ self.offset)


@dataclass(frozen=True)
class Alignment:
    """How the reference was put on the new frame's grid."""

    transform: PixelTransform
    matched_stars: int
    residual_px: float


def _fit_affine(new_xy: np.ndarray, ref_xy: np.ndarray) -> PixelTransform:
    design = np.column_stack([new_xy, np.ones(len(new_xy))])
    solution, *_ = np.linalg.lstsq(design, ref_xy, rcond=None)
    return PixelTransform(matrix=solution[:2].T, offset=solution[2])


def wcs_transform(new_wcs: WCS, ref_wcs: WCS, new_shape: tuple[int, int]) -> PixelTransform:
    """The affine map new -> reference pixels that the two WCS solutions imply."""
    height, width = new_shape
    gx, gy = np.meshgrid(
        np.linspace(0, width - 1, GRID_POINTS), np.linspace(0, height - 1, GRID_POINTS)
    )
    new_xy = np.column_stack([gx.ravel(), gy.ravel()])
    with np.errstate(all="ignore"):
        sky = new_wcs.pixel_to_world(new_xy[:, 0], new_xy[:, 1])
        ref_x, ref_y = ref_wcs.world_to_pixel(sky)
    ref_xy = np.column_stack([ref_x, ref_y])
    finite = np.isfinite(ref_xy).all(axis=1)
    if finite.sum() < 3:
        raise AlignmentError("the reference WCS cannot place this frame's pixels on the sky")
    return _fit_affine(new_xy[finite], ref_xy[finite])


def overlap_fraction(
    transform: PixelTransform, new_shape: tuple[int, int], ref_shape: tuple[int, int]
) -> float:
    """The fraction of the new frame's area that falls on the reference."""
    height, width = new_shape
    gx, gy = np.meshgrid(np.linspace(0, width - 1, 33), np.linspace(0, height - 1, 33))
    ref_xy = transform.apply(np.column_stack([gx.ravel(), gy.ravel()]))
    inside = (ref_xy[:, 0] >= 0) & (ref_xy[:, 0] <= ref_shape[1] - 1)
    inside &= (ref_xy[:, 1] >= 0) & (ref_xy[:, 1] <= ref_shape[0] - 1)
    return float(inside.mean())


def refine_on_stars(
    guess: PixelTransform,
    new_xy: np.ndarray,
    ref_xy: np.ndarray,
    match_radius_px: float,
) -> Alignment:
    """Improve a guessed transform with the stars both frames share (nearest neighbours)."""
    if len(new_xy) == 0 or len(ref_xy) == 0:
        return Alignment(guess, matched_stars=0, residual_px=float("nan"))
    transform = guess
    radius = match_radius_px
    pairs = np.zeros((0, 2), dtype=int)
    for _ in range(3):
        distance, index = cKDTree(ref_xy).query(
            transform.apply(new_xy), distance_upper_bound=radius
        )
        matched = np.isfinite(distance)
        pairs = np.column_stack([np.flatnonzero(matched), index[matched]])
        pairs = _without_outliers(pairs, transform, new_xy, ref_xy)
        if len(pairs) >= MIN_MATCHES_FOR_AFFINE:
            transform = _fit_affine(new_xy[pairs[:, 0]], ref_xy[pairs[:, 1]])
        elif len(pairs) >= MIN_MATCHES_FOR_SHIFT:
            shift = np.median(ref_xy[pairs[:, 1]] - transform.apply(new_xy[pairs[:, 0]]), axis=0)
            transform = PixelTransform(transform.matrix, transform.offset + shift)
        else:
            return Alignment(guess, matched_stars=len(pairs), residual_px=float("nan"))
        radius = max(1.0, radius / 2.0)
    residual = ref_xy[pairs[:, 1]] - transform.apply(new_xy[pairs[:, 0]])
    rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    return Alignment(transform, matched_stars=len(pairs), residual_px=rms)


def _without_outliers(
    pairs: np.ndarray, transform: PixelTransform, new_xy: np.ndarray, ref_xy: np.ndarray
) -> np.ndarray:
    """Matched pairs whose offset agrees with the median offset (drops chance matches)."""
    if len(pairs) < 4:
        return pairs
    offsets = ref_xy[pairs[:, 1]] - transform.apply(new_xy[pairs[:, 0]])
    deviation = np.hypot(*(offsets - np.median(offsets, axis=0)).T)
    limit = max(3.0 * MAD_TO_SIGMA * float(np.median(deviation)), 0.3)
    return pairs[deviation <= limit]


def resample_onto_new(
    ref_image: np.ndarray, transform: PixelTransform, new_shape: tuple[int, int]
) -> np.ndarray:
    """The reference image on the new frame's pixel grid (bilinear; NaN outside the reference)."""
    # scipy works in (row, column) order: ref_yx = M_yx @ new_yx + offset_yx.
    matrix_yx = transform.matrix[::-1, ::-1]
    offset_yx = transform.offset[::-1]
    return ndimage.affine_transform(
        np.asarray(ref_image, dtype=np.float32),
        matrix_yx,
        offset=offset_yx,
        output_shape=new_shape,
        order=1,
        mode="constant",
        cval=np.nan,
        prefilter=False,
    )

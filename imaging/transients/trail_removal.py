"""Sources on a satellite trail: found again once the trail's own profile is taken out.

A bright trail crosses the matched-filtered difference as one long blob above the threshold,
and a transient within a PSF or two of it joins that blob, which is then dropped with it as far
larger than a point source (on 40 simulated pairs of one bench seed, 8 transients of S/N 11-29
were lost so, 0.2-8 px from a trail's axis). For each such blob that is a line (elongated; its
axis from sep's second moments, refined on the centres of the trail's cross-section along it),
the cross-section is measured in stretches along the axis, as the median of the whitened pixels
at each distance from it, and subtracted from the difference in a band around the axis; the
band is then searched as usual, box by box. What is found there must be about round: the
trail's leftovers are drawn out along it.
"""

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from imaging.transients.sources import extract_whole_frame
from imaging.transients.subtract import DifferenceImage

MIN_ELONGATION = 8.0
"""A blob at least this many times longer than wide is a trail; rounder blobs stay dropped."""
STRETCH_PX = 128.0
"""The trail's cross-section is measured anew every this many pixels along it (its brightness
changes as a satellite tumbles or leaves the shadow)."""
OFFSET_STEP_PX = 0.5
"""Distances from the axis are binned this finely for the cross-section."""
MAX_ELLIPTICITY = 0.5
"""What is found under a trail must be rounder than this: the trail's leftovers are drawn out
along it (ellipticity 0.56-0.92 on three bench seeds), and so are the two-pixel specks of noise
that the measured profile's own noise adds near the threshold (0.5 exactly); the transients
found there were at 0.01-0.38."""
MIN_PEAK_OVER_THRESHOLD = 1.5
"""What is found under a trail must stand this many times the detection threshold above it on
the filtered difference (6.3 sigma for 4.2): the measured profile carries noise of its own
along the whole trail, which adds near-threshold peaks there (on 200 bench pairs, without this
rule, 12 more false candidates at real/bogus 0.85 than without the trail search)."""
BAND_HALF_WIDTHS = 3.0
"""The band cleaned around the axis: this many of the blob's widths (sep's `b`), plus a FWHM."""


def detections_on_trails(
    difference: DifferenceImage,
    whitened: np.ndarray,
    unusable: np.ndarray,
    giants: np.ndarray,
    known: np.ndarray,
    extract_options: dict[str, Any],
    max_npix: float,
) -> np.ndarray:
    """The point-like detections (sep objects) hidden in the trail-like `giants` of a detection
    with `extract_options` on `whitened` (the difference over its noise), found again after each
    trail's profile is subtracted from both, in place: the trails leave the difference, so
    the detections are measured and cut out without them. Detections within a FWHM of one
    `known` already are left out."""
    fwhm_px = difference.psf_fwhm_px
    found = [
        _under_one_trail(difference, whitened, unusable, giant, extract_options)
        for giant in giants[giants["a"] >= MIN_ELONGATION * np.maximum(giants["b"], 1e-6)]
    ]
    if not found:
        return giants[:0]
    objects = np.concatenate(found)
    round_enough = objects["b"] > (1.0 - MAX_ELLIPTICITY) * objects["a"]
    strong = objects["cpeak"] >= MIN_PEAK_OVER_THRESHOLD * extract_options["thresh"]
    objects = objects[(objects["npix"] <= max_npix) & round_enough & strong]
    # a source where two blobs of one trail meet is found under both, one near it may be known
    kept: list[int] = []
    taken_x, taken_y = list(known["x"]), list(known["y"])
    for index in np.argsort(-objects["peak"]):
        x, y = objects["x"][index], objects["y"][index]
        if not np.any(np.hypot(np.subtract(taken_x, x), np.subtract(taken_y, y)) < fwhm_px):
            kept.append(int(index))
            taken_x.append(x)
            taken_y.append(y)
    return objects[np.array(sorted(kept), dtype=np.int64)]


def _under_one_trail(
    difference: DifferenceImage,
    whitened: np.ndarray,
    unusable: np.ndarray,
    giant: np.void,
    extract_options: dict[str, Any],
) -> np.ndarray:
    """Subtract one trail's profile, stretch by stretch along it, then detect in each stretch's
    box (objects in frame pixels). Boxes, not the trail's whole bounding box: a trail across a
    4096² frame would make that the whole frame."""
    axis = _Axis.of(giant, difference.psf_fwhm_px, whitened.shape).refined(whitened, unusable)
    stretches = [(start, *axis.band(start, unusable)) for start in axis.stretch_starts()]
    for _, box, band, offset in stretches:
        if band.any():
            profile = _cell_medians(whitened[box][band], offset - offset.min())
            whitened[box][band] -= profile.astype(np.float32)
            difference.data[box][band] -= (profile * difference.noise[box][band]).astype(np.float32)
    found = []
    for start, box, band, _ in stretches:
        if band.size == 0:
            continue
        objects = extract_whole_frame(
            np.ascontiguousarray(whitened[box]),
            mask=np.ascontiguousarray(unusable[box]),
            **extract_options,
        )
        for name in ("x", "xpeak", "xcpeak", "xmin", "xmax"):
            objects[name] += box[1].start
        for name in ("y", "ypeak", "ycpeak", "ymin", "ymax"):
            objects[name] += box[0].start
        along, across = axis.coordinates(objects["x"], objects["y"])
        mine = (np.abs(across) <= axis.half_width) & (along >= start)
        found.append(objects[mine & (along < start + STRETCH_PX)])
    return np.concatenate(found) if found else np.zeros(0, dtype=giant.dtype)


@dataclass(frozen=True)
class _Axis:
    """A trail's axis: a point on it, its direction, the band around it and the frame's size."""

    x: float
    y: float
    theta: float
    half_width: float
    pad: int
    shape: tuple[int, int]
    extent: tuple[float, float]

    @classmethod
    def of(cls, giant: np.void, fwhm_px: float, shape: tuple[int, int]) -> "_Axis":
        half_width = BAND_HALF_WIDTHS * float(giant["b"]) + fwhm_px
        x, y, theta = float(giant["x"]), float(giant["y"]), float(giant["theta"])
        corners_x = np.array([giant["xmin"], giant["xmax"], giant["xmin"], giant["xmax"]], float)
        corners_y = np.array([giant["ymin"], giant["ymin"], giant["ymax"], giant["ymax"]], float)
        along = (corners_x - x) * np.cos(theta) + (corners_y - y) * np.sin(theta)
        pad = int(np.ceil(half_width + 2.0 * fwhm_px))
        return cls(x, y, theta, half_width, pad, shape, (along.min(), along.max()))

    def coordinates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position along the axis and distance across it of pixels (x, y)."""
        dx, dy = x - self.x, y - self.y
        cos, sin = np.cos(self.theta), np.sin(self.theta)
        return dx * cos + dy * sin, dy * cos - dx * sin

    def stretch_starts(self) -> np.ndarray:
        """Where each `STRETCH_PX` stretch along the axis begins (distance from the centre)."""
        return np.arange(self.extent[0], self.extent[1] + 1.0, STRETCH_PX)

    def band(
        self, start: float, unusable: np.ndarray
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """The box around the stretch from `start`, its usable pixels within the band, and their
        distances from the axis in `OFFSET_STEP_PX` steps."""
        box, along, across = self.box(start)
        band = (np.abs(across) <= self.half_width) & (along >= start)
        band &= (along < start + STRETCH_PX) & ~unusable[box]
        return box, band, np.rint(across[band] / OFFSET_STEP_PX).astype(np.int64)

    def refined(self, whitened: np.ndarray, unusable: np.ndarray) -> "_Axis":
        """The axis through the trail's light: sep's second moments leave its direction a few
        thousandths of a radian off, which over a 1000 px trail puts the profile a pixel or two
        aside. The centre of the trail's cross-section in each stretch, fitted with a line."""
        centres, offsets, weights = [], [], []
        for start in self.stretch_starts():
            box, band, offset = self.band(start, unusable)
            if not band.any():
                continue
            steps = offset - offset.min()
            light = np.clip(_cell_medians(whitened[box][band], steps), 0.0, None)
            if light.sum() > 0:
                centres.append(start + STRETCH_PX / 2.0)
                offsets.append(float(np.sum(light * offset) / light.sum()) * OFFSET_STEP_PX)
                weights.append(float(light.sum()))
        if len(centres) < 2:
            return self
        slope, shift = np.polyfit(centres, offsets, 1, w=np.sqrt(weights))
        return replace(
            self,
            x=self.x - shift * np.sin(self.theta),
            y=self.y + shift * np.cos(self.theta),
            theta=self.theta + float(np.arctan(slope)),
        )

    def box(self, start: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """The pixels around the stretch from `start` (slices), and their coordinates."""
        ends = np.array([start, start + STRETCH_PX])
        xs = self.x + ends * np.cos(self.theta)
        ys = self.y + ends * np.sin(self.theta)
        height, width = self.shape
        x0, x1 = max(int(xs.min()) - self.pad, 0), min(int(xs.max()) + self.pad + 1, width)
        y0, y1 = max(int(ys.min()) - self.pad, 0), min(int(ys.max()) + self.pad + 1, height)
        box = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)))
        yy, xx = np.mgrid[box]
        return (box, *self.coordinates(xx.astype(float), yy.astype(float)))


def _cell_medians(values: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Each value's replacement by the median of the values in its cell."""
    order = np.lexsort((values, cell))
    sorted_cells = cell[order]
    starts = np.flatnonzero(np.concatenate([[True], np.diff(sorted_cells) != 0]))
    counts = np.diff(np.concatenate([starts, [len(values)]]))
    lower = values[order][starts + (counts - 1) // 2]
    upper = values[order][starts + counts // 2]
    medians = np.empty(len(values), dtype=np.float64)
    medians[order] = np.repeat((lower + upper) / 2.0, counts)
    return medians

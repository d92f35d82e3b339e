"""One frame's transient search in progress (`SearchWork`) and the pixel steps that fill it in.

A search is a list of steps (`imaging.transients.search.search_path`), each with one job and a
`run(work)`: the pixel steps here (align on the WCS, sky-subtract and find the frame's stars,
refine the alignment, resample the reference, fit the kernel, subtract, detect, measure) and the
gates in `imaging.transients.search_gates`, which skip the frame or drop detections. A step
reads what earlier steps put on the `SearchWork` and adds its own; a frame that cannot be
searched raises `SearchSkipped` with one sentence for the operator.
"""

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
from scipy.spatial import cKDTree

from imaging.fits_reader import Frame
from imaging.transients.align import (
    Alignment,
    AlignmentError,
    PixelTransform,
    refine_on_stars,
    resample_onto_new,
    wcs_transform,
)
from imaging.transients.detect import detect_peaks
from imaging.transients.measure import Measurements, measure_candidates
from imaging.transients.psf_match import (
    KernelFitError,
    KernelSolution,
    fit_kernel,
    kernel_half_width_px,
)
from imaging.transients.references import Reference
from imaging.transients.sources import (
    SkySubtracted,
    StarTable,
    find_stars,
    psf_fwhm_px,
    subtract_background,
)
from imaging.transients.subtract import DifferenceImage, difference_image

T = TypeVar("T")

WCS_MATCH_RADIUS_PX = 8.0
POINT_SOURCE_FWHM_TOLERANCE = 0.3
"""A reference source within this fraction of the PSF's FWHM is a point source (a star)."""
STAMP_REFERENCE_SIGMA = 10.0
STAMP_CLEAR_PX = 6
"""A kernel star has no masked pixel within this many pixels (a box) of its centre."""


class SearchSkipped(Exception):
    """A frame that cannot be searched; `reason` is one sentence for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def required(value: T | None, what: str) -> T:
    """`value`, which an earlier step of the search fills in (an error if it has not)."""
    if value is None:
        raise RuntimeError(f"the search has no {what} yet: a step that makes it must come first")
    return value


@dataclass
class SearchWork:
    """One frame's search on its way through the steps; each fills in its part.

    Until the subtraction, `sky` is the new frame sky-subtracted; after it, only its image is
    kept (`new_image`): its noise map (64 MB on a 4096² frame) lives on in the difference's.
    Before measuring, the detections are `peaks` (sep objects); after it, `measured` with
    `nearest_reference_px` beside it. `dropped` counts the detections each gate dropped.
    """

    frame: Frame
    reference: Reference
    consume_frame: bool = False
    """Let the frame's pixels become its sky-subtracted image (one 4096² copy less)."""
    guess: PixelTransform | None = None
    sky: SkySubtracted | None = None
    stars: StarTable | None = None
    fwhm_px: float | None = None
    alignment: Alignment | None = None
    reference_filled: np.ndarray | None = None
    """The reference on the new frame's grid, 0 where `bad`."""
    bad: np.ndarray | None = None
    kernel: KernelSolution | None = None
    difference: DifferenceImage | None = None
    new_image: np.ndarray | None = None
    reference_stars_px: np.ndarray | None = None
    """The reference's stars in new-frame pixels."""
    peaks: np.ndarray | None = None
    measured: Measurements | None = None
    nearest_reference_px: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.frame.identity.file_name

    @property
    def new_fwhm_px(self) -> float:
        return required(self.fwhm_px, "PSF width of the new frame")

    @property
    def reference_fwhm_px(self) -> float:
        return self.reference.info.fwhm_px

    @property
    def target_fwhm_px(self) -> float:
        """The broader of the two PSFs: the sharper image is convolved to it."""
        return max(self.new_fwhm_px, self.reference_fwhm_px)

    @property
    def convolve_reference(self) -> bool:
        return self.new_fwhm_px >= self.reference_fwhm_px

    @property
    def new_flux_per_reference(self) -> float:
        """Flux in the new frame per unit flux in the reference, from the fitted kernel."""
        scale = required(self.kernel, "kernel").photometric_scale
        return scale if self.convolve_reference else 1.0 / scale

    def keep_only(self, keep: np.ndarray) -> None:
        """Keep the detections where `keep` is true: the measured ones once there are some,
        else the peaks."""
        if self.measured is not None:
            self.measured = self.measured.select(keep)
            self.nearest_reference_px = required(self.nearest_reference_px, "star distances")[keep]
        else:
            self.peaks = required(self.peaks, "detections")[keep]


class SearchStep(Protocol):
    """One step of a search; it reads and fills in the `SearchWork`, or raises `SearchSkipped`."""

    def run(self, work: SearchWork) -> None: ...


@dataclass(frozen=True)
class GuessAlignment:
    """The new frame's pixels on the reference's, from the two WCS solutions."""

    def run(self, work: SearchWork) -> None:
        wcs = required(work.frame.wcs, "WCS of the frame")
        try:
            work.guess = wcs_transform(wcs, work.reference.wcs, work.frame.data.shape)
        except AlignmentError as exc:
            raise SearchSkipped(f"WCS does not overlap the reference: {exc}") from exc


@dataclass(frozen=True)
class FindStars:
    """Sky-subtract the new frame, find its stars (above `min_snr`) and measure their FWHM."""

    min_snr: float

    def run(self, work: SearchWork) -> None:
        frame, overwrite = work.frame, work.consume_frame
        work.sky = subtract_background(frame.data, frame.saturation_adu, overwrite=overwrite)
        work.stars = find_stars(work.sky, min_snr=self.min_snr)
        work.fwhm_px = psf_fwhm_px(work.stars)  # None with too few stars


@dataclass(frozen=True)
class RefineAlignment:
    """The WCS guess refined on the stars both frames hold."""

    def run(self, work: SearchWork) -> None:
        work.alignment = refine_on_stars(
            required(work.guess, "WCS alignment"),
            required(work.stars, "stars").xy,
            work.reference.stars.xy,
            WCS_MATCH_RADIUS_PX,
        )


@dataclass(frozen=True)
class ResampleReference:
    """The reference on the new frame's grid, and the pixels not to trust: saturation (grown by
    `saturation_margin_px` and the PSF) and the reference's edges and holes (grown by the
    kernel)."""

    saturation_margin_px: int

    def run(self, work: SearchWork) -> None:
        sky = required(work.sky, "sky-subtracted frame")
        alignment = required(work.alignment, "alignment")
        shape = work.frame.data.shape
        reference = resample_onto_new(work.reference.image, alignment.transform, shape)
        target_fwhm = work.target_fwhm_px
        saturated = dilate(sky.bad, self.saturation_margin_px + int(np.ceil(target_fwhm)))
        outside = dilate(~np.isfinite(reference), kernel_half_width_px(target_fwhm) + 2)
        bad = saturated | outside
        del saturated, outside
        reference[bad] = 0.0  # a fresh array: filled in place (64 MB on a 4096² frame)
        work.reference_filled, work.bad = reference, bad


@dataclass(frozen=True)
class FitKernel:
    """The convolution kernel that matches the sharper image's PSF to the broader one's, fitted
    on up to `max_stars` clean stars (`min_stars` at least, or the frame is skipped)."""

    min_stars: int
    max_stars: int

    def run(self, work: SearchWork) -> None:
        sky = required(work.sky, "sky-subtracted frame")
        reference = required(work.reference_filled, "resampled reference")
        bad = required(work.bad, "mask")
        noise_adu = work.reference.info.noise_adu
        stamp_xy = kernel_stamps(
            required(work.stars, "stars"), reference, noise_adu, bad, self.max_stars
        )
        target_variance = np.square(sky.noise)
        target_variance += np.float32(noise_adu**2)
        convolve_reference = work.convolve_reference
        try:
            work.kernel = fit_kernel(
                reference if convolve_reference else sky.image,
                sky.image if convolve_reference else reference,
                target_variance,
                stamp_xy,
                source_fwhm_px=min(work.new_fwhm_px, work.reference_fwhm_px),
                target_fwhm_px=work.target_fwhm_px,
                convolved="reference" if convolve_reference else "new",
                min_stamps=self.min_stars,
            )
        except KernelFitError as exc:
            raise SearchSkipped(str(exc)) from exc


@dataclass(frozen=True)
class Subtract:
    """The difference image; the reference's point sources (within `POINT_SOURCE_FWHM_TOLERANCE`
    of its PSF) tell it where star light raises the noise."""

    def run(self, work: SearchWork) -> None:
        sky = required(work.sky, "sky-subtracted frame")
        alignment = required(work.alignment, "alignment")
        stars = work.reference.stars
        reference_stars_px = alignment.transform.inverse().apply(stars.xy)
        point_like = (
            np.abs(stars.fwhm_px / work.reference_fwhm_px - 1.0) <= POINT_SOURCE_FWHM_TOLERANCE
        )
        work.difference = difference_image(
            sky.image,
            sky.noise,
            required(work.reference_filled, "resampled reference"),
            work.reference.info.noise_adu,
            required(work.kernel, "kernel"),
            required(work.bad, "mask"),
            work.target_fwhm_px,
            reference_stars_px[point_like],
        )
        work.reference_stars_px = reference_stars_px
        work.new_image, work.sky = sky.image, None


@dataclass(frozen=True)
class DetectPeaks:
    """Peaks of the matched-filtered difference above `sigma` (`detect.detect_peaks`)."""

    sigma: float

    def run(self, work: SearchWork) -> None:
        work.peaks = detect_peaks(required(work.difference, "difference"), self.sigma)


@dataclass(frozen=True)
class Measure:
    """PSF photometry, shape and position of each peak, and its distance to the nearest
    reference star (infinite when there is none)."""

    def run(self, work: SearchWork) -> None:
        measured = measure_candidates(
            required(work.difference, "difference"), required(work.peaks, "detections")
        )
        stars_px = required(work.reference_stars_px, "reference stars")
        work.nearest_reference_px = (
            cKDTree(stars_px).query(np.column_stack([measured.x, measured.y]))[0]
            if len(stars_px) and len(measured)
            else np.full(len(measured), np.inf)
        )
        work.measured, work.peaks = measured, None


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """A mask grown by `radius_px` in x and y (a box dilation), by OR-ing it with itself shifted
    along each axis, the shift doubling each time (a radius of 13 px takes three shifts each
    way); padded so that pixels near the edges grow like the rest. 0.03 s on a 4096² frame,
    where scipy's maximum filter took 0.25 s (its pass down the columns walks memory across)."""
    if radius_px <= 0 or not mask.any():
        return mask
    grown = np.pad(mask, radius_px)
    for along in (grown, grown.T):  # rows, then columns: views, grown in place
        reach = 0  # `grown` holds the OR over shifts up to `reach` so far
        while reach < radius_px:
            step = min(2 * reach + 1, radius_px - reach)
            along[step:] |= along[:-step]
            along[:-step] |= along[step:]
            reach += step
    return grown[radius_px:-radius_px, radius_px:-radius_px]


def kernel_stamps(
    stars: StarTable,
    reference: np.ndarray,
    reference_noise_adu: float,
    bad: np.ndarray,
    max_stars: int,
) -> np.ndarray:
    """Positions of unsaturated, isolated stars away from masked pixels that the aligned
    `reference` shows too (its 3x3 sum at the star above `STAMP_REFERENCE_SIGMA`), for the
    kernel fit: a transient or a defect of the new frame has no counterpart there and would
    bend the kernel."""
    xy = stars.xy
    if len(xy) == 0:
        return xy
    ix = np.clip(np.rint(xy[:, 0]).astype(int), 1, bad.shape[1] - 2)
    iy = np.clip(np.rint(xy[:, 1]).astype(int), 1, bad.shape[0] - 2)
    box = sum(reference[iy + dy, ix + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    in_reference = box > STAMP_REFERENCE_SIGMA * 3.0 * reference_noise_adu
    r = STAMP_CLEAR_PX
    clean = np.array(
        [
            not bad[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].any()
            for x, y in zip(ix, iy, strict=True)
        ],
        dtype=bool,
    )
    distance, _ = cKDTree(xy).query(xy, k=2) if len(xy) > 1 else (np.full((1, 2), np.inf), None)
    isolated = distance[:, 1] > 12.0
    usable = xy[clean & isolated & in_reference]
    return usable[:max_stars]

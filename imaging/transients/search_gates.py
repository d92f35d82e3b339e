"""The gates of a transient search: each one check, with its threshold, testable alone.

A frame gate skips a frame that cannot be searched (no WCS, too little overlap, a PSF or depth
too different from the reference, too few stars, a subtraction that floods or leaves the stars
behind): it raises `SearchSkipped` with one sentence for the operator, which the frame's
`FrameSearched` carries. A detection gate drops the detections that are not transients (pieces
of a trail, faint ones, a star's dipole, cosmic rays): it counts them on the `SearchWork`
(`dropped`, by what they are) and logs the count with the frame. Where the gates stand in a
search is `imaging.transients.search.search_path`.
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from imaging.transients.align import overlap_fraction
from imaging.transients.chains import on_lines
from imaging.transients.search_steps import SearchSkipped, SearchWork, required

log = logging.getLogger(__name__)

STAR_RESIDUAL_FWHM = 1.0
"""A detection within this many FWHM of a reference star counts as a residual of that star."""
STAR_RESIDUAL_MIN_PX = 3.0
"""... and within this many pixels of it, however sharp the PSF."""
STAR_DIPOLE_RATIO = 0.5
"""A detection on a reference star whose negative lobe beside it is this deep (as a fraction of
its peak, PSF-filtered) is the star's dipole, not a transient: on 15 simulated pairs 7 % of
bogus detections and 2 % of injected transients (none of them on stars) reach it; the two
false candidates of the DECam pair are at -0.64 and -1.08, its supernova at -0.13."""
SHARP_PEAK_SIGMA = 5.0
SHARP_PEAK_RATIO = 2.0
"""A detection whose brightest pixel stands this many sigma above the fitted PSF's value there,
and at this many times that value, is a cosmic ray or hot pixel: nothing seen through the
atmosphere is that sharp. On 40 simulated pairs 1,370 of 2,767 bogus detections and one of 871
injected transients (a cosmic ray on it; real/bogus 0.16) reach both, faint real ones at most
3.8 sigma; a cosmic ray in a single DECam exposure that real/bogus scored 0.99 reaches 13. A
transient that a cosmic ray's track crosses goes with it (one of 659 at S/N >= 10 on another 40
pairs): cosmic rays are not cleaned from the frame first."""
TRAIL_TOLERANCE_FWHM = 0.5
"""Detections within this many FWHM (1 px at least) of one line, six or more in a row, are the
pieces of a trail (`chains.on_lines`)."""


class FrameGate(ABC):
    """A check a frame must pass to be searched further."""

    @abstractmethod
    def why_not(self, work: SearchWork) -> str | None:
        """Why the frame cannot be searched (one sentence), or None when it passes."""

    def run(self, work: SearchWork) -> None:
        reason = self.why_not(work)
        if reason is not None:
            raise SearchSkipped(reason)


class DetectionGate(ABC):
    """A check each detection must pass to become a candidate; `what` names those it drops
    (in the log line and in `SearchWork.dropped`)."""

    what: str
    level: int = logging.INFO

    @abstractmethod
    def drops(self, work: SearchWork) -> np.ndarray:
        """A mask of the detections this gate drops."""

    def run(self, work: SearchWork) -> None:
        dropped = self.drops(work)
        count = int(np.count_nonzero(dropped))
        if count:
            log.log(self.level, "%d %s dropped frame=%s", count, self.what, work.name)
            work.keep_only(~dropped)
        work.dropped[self.what] = count


@dataclass(frozen=True)
class HasWcs(FrameGate):
    """The frame must have a WCS to be put on the reference's grid."""

    def why_not(self, work: SearchWork) -> str | None:
        if work.frame.wcs is None:
            return "frame has no WCS: cannot align it with the reference"
        return None


@dataclass(frozen=True)
class OverlapsReference(FrameGate):
    """The reference must cover `min_fraction` of the frame (by the WCS guess)."""

    min_fraction: float

    def why_not(self, work: SearchWork) -> str | None:
        guess = required(work.guess, "WCS alignment")
        overlap = overlap_fraction(guess, work.frame.data.shape, work.reference.image.shape)
        if overlap >= self.min_fraction:
            return None
        return (
            f"WCS overlaps the reference {work.reference.info.field_id} on {overlap:.0%} of the "
            f"frame (need {self.min_fraction:.0%})"
        )


@dataclass(frozen=True)
class PsfMeasured(FrameGate):
    """The frame must hold enough stars to measure its PSF."""

    def why_not(self, work: SearchWork) -> str | None:
        if work.fwhm_px is not None:
            return None
        stars = 0 if work.stars is None else len(work.stars)
        return f"only {stars} stars in the frame: cannot measure its PSF"


@dataclass(frozen=True)
class SimilarSeeing(FrameGate):
    """The two FWHMs may differ by `max_ratio` (either way) at most."""

    max_ratio: float

    def why_not(self, work: SearchWork) -> str | None:
        new, ref = work.new_fwhm_px, work.reference_fwhm_px
        ratio = max(new / ref, ref / new)
        if ratio <= self.max_ratio:
            return None
        return (
            f"PSF too different from the reference: FWHM {new:.2f} px vs {ref:.2f} px "
            f"(ratio {ratio:.2f} > {self.max_ratio})"
        )


@dataclass(frozen=True)
class StarsMatchReference(FrameGate):
    """At least `min_stars` stars must match the reference's once aligned."""

    min_stars: int

    def why_not(self, work: SearchWork) -> str | None:
        matched = required(work.alignment, "alignment").matched_stars
        if matched >= self.min_stars:
            return None
        return f"only {matched} stars match the reference: wrong field or WCS"


@dataclass(frozen=True)
class SimilarFlux(FrameGate):
    """The kernel's flux scale new/reference must lie in `low`-`high` (clouds, exposure)."""

    low: float
    high: float

    def why_not(self, work: SearchWork) -> str | None:
        scale = work.new_flux_per_reference
        if self.low <= scale <= self.high:
            return None
        return (
            f"flux scale new/reference {scale:.2f} outside {self.low}-{self.high} "
            "(clouds? exposure?)"
        )


@dataclass(frozen=True)
class SimilarDepth(FrameGate):
    """The frame may be `max_loss_mag` shallower than the reference for point sources at most
    (noise x FWHM over flux scale, against the reference's noise x FWHM)."""

    max_loss_mag: float

    def why_not(self, work: SearchWork) -> str | None:
        sky = required(work.sky, "sky-subtracted frame")  # checked before the subtraction
        new = sky.global_noise * work.new_fwhm_px / work.new_flux_per_reference
        reference = work.reference.info.noise_adu * work.reference_fwhm_px
        depth_loss = 2.5 * np.log10(new / reference)
        if depth_loss <= self.max_loss_mag:
            return None
        return (
            f"frame is {depth_loss:.1f} mag shallower than the reference "
            f"(limit {self.max_loss_mag} mag)"
        )


@dataclass(frozen=True)
class DropTrails(DetectionGate):
    """Peaks along a line (`TRAIL_TOLERANCE_FWHM`) are the pieces of a trail; they go before the
    flood check, so that a trail does not count as a failed subtraction."""

    what = "detections along trails"

    def drops(self, work: SearchWork) -> np.ndarray:
        peaks = required(work.peaks, "detections")
        tolerance_px = max(1.0, TRAIL_TOLERANCE_FWHM * work.target_fwhm_px)
        return on_lines(peaks["x"], peaks["y"], tolerance_px)


@dataclass(frozen=True)
class NotFlooded(FrameGate):
    """More peaks than `per_mpx` per megapixel (`floor` at least) mean a failed subtraction."""

    per_mpx: float
    floor: int

    def why_not(self, work: SearchWork) -> str | None:
        count = len(required(work.peaks, "detections"))
        limit = max(self.floor, self.per_mpx * work.frame.data.size / 1e6)
        if count <= limit:
            return None
        return (
            f"subtraction failed: {count} detections on the difference "
            f"(more than {limit:.0f}: {self.per_mpx:g} per megapixel, {self.floor} at least)"
        )


@dataclass(frozen=True)
class DropFaint(DetectionGate):
    """Detections below `min_snr` in PSF photometry, or not brighter, are dropped (logged at
    debug level: most peaks at the detection threshold go here)."""

    min_snr: float
    what = "detections fainter than the S/N limit"
    level = logging.DEBUG

    def drops(self, work: SearchWork) -> np.ndarray:
        measured = required(work.measured, "measured detections")
        return ~((measured.snr >= self.min_snr) & (measured.flux > 0))


def on_reference_star(work: SearchWork) -> np.ndarray:
    """A mask of the measured detections on a reference star (`STAR_RESIDUAL_FWHM`)."""
    nearest_px = required(work.nearest_reference_px, "star distances")
    radius_px = max(STAR_RESIDUAL_FWHM * work.target_fwhm_px, STAR_RESIDUAL_MIN_PX)
    return np.asarray(nearest_px <= radius_px)


@dataclass(frozen=True)
class FewStarResiduals(FrameGate):
    """More than `max_residuals` detections on reference stars, and most of them, mean the PSF
    could not be matched."""

    max_residuals: int

    def why_not(self, work: SearchWork) -> str | None:
        measured = len(required(work.measured, "measured detections"))
        residuals = int(np.count_nonzero(on_reference_star(work)))
        if residuals <= self.max_residuals or residuals <= measured / 2:
            return None
        return (
            f"subtraction left residuals at {residuals} of {measured} detections on "
            "reference stars: the PSF differs from the reference in shape (trailing, focus?)"
        )


@dataclass(frozen=True)
class DropStarDipoles(DetectionGate):
    """A detection on a reference star with a negative lobe beside it (`STAR_DIPOLE_RATIO`) is
    the star's dipole."""

    what = "dipoles on reference stars"

    def drops(self, work: SearchWork) -> np.ndarray:
        measured = required(work.measured, "measured detections")
        return on_reference_star(work) & (measured.dipole_ratio <= -STAR_DIPOLE_RATIO)


@dataclass(frozen=True)
class DropSharpPeaks(DetectionGate):
    """A detection sharper than the PSF (`SHARP_PEAK_SIGMA` and `SHARP_PEAK_RATIO`) is a cosmic
    ray or a hot pixel."""

    what = "detections sharper than the PSF"

    def drops(self, work: SearchWork) -> np.ndarray:
        measured = required(work.measured, "measured detections")
        sharp = measured.peak_excess >= SHARP_PEAK_SIGMA
        return np.asarray(sharp & (measured.peak_over_psf >= SHARP_PEAK_RATIO))

"""The transient search of one frame against its field's reference: the site's entry point.

`find_candidates` is the pixel path, a list of steps and gates in one place (`search_path`):
align, check, fit the kernel, subtract, detect, measure, and drop what is not a transient; then
cut stamps. The steps are in `imaging.transients.search_steps`, the gates with their thresholds
in `imaging.transients.search_gates`. It raises `SearchSkipped` with a sentence for the operator
when a frame cannot be searched (no WCS, no overlap, PSF or depth too different, too few stars,
a subtraction that floods); the detections the gates drop are counted (`Detections.dropped`) and
logged. `search_transients` adds the real/bogus filter and turns survivors into
`TransientCandidate` messages, and always returns a `TransientSearch` for the frame's
`FrameSearched`: attempted or not, how many candidates, and why not. It never raises for a
bad frame.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from pydantic import ValidationError

from imaging.fits_reader import Frame
from imaging.transients.config import TransientSearchSettings
from imaging.transients.cutouts import CUTOUT_SIDE_PX, encode_triplet, triplet
from imaging.transients.measure import Measurements
from imaging.transients.realbogus import RealBogusModel
from imaging.transients.reference_store import ReferenceStore
from imaging.transients.references import Reference
from imaging.transients.search_gates import (
    DropFaint,
    DropSharpPeaks,
    DropStarDipoles,
    DropTrails,
    FewStarResiduals,
    HasWcs,
    NotFlooded,
    OverlapsReference,
    PsfMeasured,
    SimilarDepth,
    SimilarFlux,
    SimilarSeeing,
    StarsMatchReference,
)
from imaging.transients.search_steps import (
    DetectPeaks,
    FindStars,
    FitKernel,
    GuessAlignment,
    Measure,
    RefineAlignment,
    ResampleReference,
    SearchSkipped,
    SearchStep,
    SearchWork,
    Subtract,
    required,
)
from imaging.transients.subtract import DifferenceImage
from protos import QualityLabel, TransientCandidate, TransientSearch, stable_message_id
from protos.transients import SKIPPED_REASON_MAX_CHARS

log = logging.getLogger(__name__)

BAD_FRAME_REASON = "frame graded bad: not searched"


@dataclass(frozen=True)
class Detections:
    """Everything found on one difference image, before real/bogus."""

    difference: DifferenceImage
    measurements: Measurements
    stamps: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    nearest_reference_px: np.ndarray
    photometric_scale: float
    kernel_stamps: int
    dropped: dict[str, int] = field(default_factory=dict)
    """How many detections each gate dropped, by what they were."""


@dataclass(frozen=True)
class SearchOutcome:
    """The result of searching one frame: the summary, the candidates, and the detections."""

    search: TransientSearch
    candidates: list[TransientCandidate]
    detections: Detections | None = None
    real_bogus: np.ndarray | None = None


def _checked(condition: bool, reason: str) -> None:
    if not condition:
        raise SearchSkipped(reason)


def search_path(settings: TransientSearchSettings) -> list[SearchStep]:
    """The search's steps and gates in order, with the thresholds of `settings`."""
    low, high = settings.photometric_scale_range
    return [
        HasWcs(),
        GuessAlignment(),
        OverlapsReference(settings.min_overlap_fraction),
        FindStars(settings.star_sigma),
        PsfMeasured(),
        SimilarSeeing(settings.max_fwhm_ratio),
        RefineAlignment(),
        StarsMatchReference(settings.min_kernel_stars),
        ResampleReference(settings.saturation_margin_px),
        FitKernel(settings.min_kernel_stars, settings.max_kernel_stars),
        SimilarFlux(low, high),
        SimilarDepth(settings.max_depth_loss_mag),
        Subtract(),
        DetectPeaks(settings.detection_sigma),
        DropTrails(),  # before the flood check: a trail is not a failed subtraction
        NotFlooded(settings.max_detections_per_mpx, settings.flood_floor),
        Measure(),
        DropFaint(settings.min_snr),
        FewStarResiduals(settings.max_star_residuals),
        DropStarDipoles(),
        DropSharpPeaks(),
    ]


def find_candidates(
    frame: Frame, reference: Reference, settings: TransientSearchSettings, *, consume: bool = False
) -> Detections:
    """Difference a frame against a reference and measure what stands out; see the module.
    With `consume`, the frame's pixels become its sky-subtracted image (one 64 MB copy of a
    4096² frame less)."""
    work = SearchWork(frame, reference, consume_frame=consume)
    for step in search_path(settings):
        step.run(work)
    return _detections(work)


def _detections(work: SearchWork) -> Detections:
    """The survivors' stamps (new, reference, difference) and sky positions."""
    measured = required(work.measured, "measured detections")
    difference = required(work.difference, "difference")
    new_image = required(work.new_image, "new image")
    reference = required(work.reference_filled, "resampled reference")
    stamps = np.array(
        [
            triplet(new_image, reference, difference.data, x, y)
            for x, y in zip(measured.x, measured.y, strict=True)
        ]
    ).reshape(-1, 3, CUTOUT_SIDE_PX, CUTOUT_SIDE_PX)
    wcs = required(work.frame.wcs, "WCS of the frame")
    ra, dec = wcs.pixel_to_world_values(measured.x, measured.y)
    return Detections(
        difference=difference,
        measurements=measured,
        stamps=stamps,
        ra_deg=np.asarray(ra) % 360.0,
        dec_deg=np.asarray(dec),
        nearest_reference_px=np.asarray(work.nearest_reference_px, dtype=float),
        photometric_scale=work.new_flux_per_reference,
        kernel_stamps=required(work.kernel, "kernel").stamps_used,
        dropped=dict(work.dropped),
    )


def search_transients(
    frame: Frame,
    reference: Reference | ReferenceStore | None,
    *,
    site_id: str,
    model: RealBogusModel | None,
    settings: TransientSearchSettings | None = None,
    label: QualityLabel | None = None,
    consume_frame: bool = False,
) -> SearchOutcome:
    """Search one frame; never raises for a frame (see `SearchOutcome`): a frame that cannot be
    searched, or an unexpected error in the pixel path, gives `attempted=False` and the reason.

    `reference` is the field's reference, or the site's store to look it up in. Without a
    `model` every detection passes real/bogus with score 1 (for tests of the pixel path only).
    With `consume_frame` the frame's pixels are overwritten by its sky-subtracted image: for a
    caller that read the frame for this search alone and wants the memory of a copy back.
    """
    settings = settings or TransientSearchSettings()
    name = frame.identity.file_name
    try:
        _checked(label != QualityLabel.BAD, BAD_FRAME_REASON)
        _checked(frame.wcs is not None, "frame has no WCS: cannot find or align its reference")
        _checked(frame.identity.date_obs is not None, "frame has no DATE-OBS")
        if isinstance(reference, ReferenceStore):
            info = reference.field_for(
                frame.wcs, frame.data.shape, min_overlap_fraction=settings.min_overlap_fraction
            )
            _checked(info is not None, "no reference covers this frame's field yet")
            assert info is not None
            reference = reference.load(info.field_id)
        _checked(reference is not None, "no reference for this frame's field")
        assert reference is not None
        detections = find_candidates(frame, reference, settings, consume=consume_frame)
    except SearchSkipped as exc:
        log.info("transient search skipped frame=%s reason=%r", name, exc.reason)
        return SearchOutcome(TransientSearch(attempted=False, skipped_reason=exc.reason), [])
    except Exception as exc:  # the frame's score must still be published
        log.exception("transient search failed frame=%s", name)
        reason = f"transient search failed: {type(exc).__name__}: {exc}"[:SKIPPED_REASON_MAX_CHARS]
        return SearchOutcome(TransientSearch(attempted=False, skipped_reason=reason), [])
    scores = (
        model.score(detections.stamps)
        if model is not None
        else np.ones(len(detections.measurements))
    )
    keep = np.flatnonzero(scores >= settings.real_bogus_threshold)
    keep = keep[np.argsort(-scores[keep])][: settings.max_published]
    candidates = []
    for index in keep:
        try:
            candidates.append(_candidate(frame, reference, detections, scores, int(index), site_id))
        except ValidationError as exc:
            log.warning("candidate dropped frame=%s index=%d: %s", name, index, exc)
    log.info(
        "transient search frame=%s detections=%d candidates=%d scale=%.3f kernel_stars=%d",
        name,
        len(detections.measurements),
        len(candidates),
        detections.photometric_scale,
        detections.kernel_stamps,
    )
    return SearchOutcome(
        TransientSearch(attempted=True, candidates=len(candidates)),
        candidates,
        detections,
        scores,
    )


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _candidate(
    frame: Frame,
    reference: Reference,
    detections: Detections,
    scores: np.ndarray,
    index: int,
    site_id: str,
) -> TransientCandidate:
    m = detections.measurements
    pixel_scale = frame.pixel_scale_arcsec or reference.info.pixel_scale_arcsec
    x, y = float(m.x[index]), float(m.y[index])
    fwhm = float(m.fwhm_px[index]) * pixel_scale
    nearest = float(detections.nearest_reference_px[index]) * pixel_scale
    assert frame.identity.date_obs is not None
    return TransientCandidate(
        message_id=stable_message_id(
            TransientCandidate.KIND, site_id, frame.identity.sha256, f"{x:.1f}", f"{y:.1f}"
        ),
        site_id=site_id,
        frame_sha256=frame.identity.sha256,
        frame_file_name=frame.identity.file_name,
        observed_at=frame.identity.date_obs,
        ra_deg=float(detections.ra_deg[index]),
        dec_deg=float(detections.dec_deg[index]),
        x_px=x,
        y_px=y,
        flux_adu=float(m.flux[index]),
        flux_err_adu=float(m.flux_err[index]),
        snr=float(m.snr[index]),
        filter=frame.identity.filter,
        fwhm_arcsec=fwhm if np.isfinite(fwhm) and fwhm > 0 else None,
        ellipticity=_finite_or_none(float(m.ellipticity[index])),
        real_bogus=float(np.clip(scores[index], 0.0, 1.0)),
        nearest_reference_source_arcsec=nearest if np.isfinite(nearest) else None,
        cutouts=encode_triplet(detections.stamps[index]),
    )

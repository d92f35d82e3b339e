"""The transient search of one frame against its field's reference: the site's entry point.

`find_candidates` is the pixel path (align, check, fit the kernel, subtract, detect, measure,
cut stamps); it raises `SearchSkipped` with a sentence for the operator when a frame cannot be
searched (no WCS, no overlap, PSF or depth too different, too few stars, a subtraction that
floods). `search_transients` adds the real/bogus filter and turns survivors into
`TransientCandidate` messages, and always returns a `TransientSearch` for the frame's
`FrameSearched`: attempted or not, how many candidates, and why not. It never raises for a
bad frame.
"""

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from scipy.spatial import cKDTree

from imaging.fits_reader import Frame
from imaging.transients.align import (
    AlignmentError,
    overlap_fraction,
    refine_on_stars,
    resample_onto_new,
    wcs_transform,
)
from imaging.transients.chains import on_lines
from imaging.transients.config import TransientSearchSettings
from imaging.transients.cutouts import CUTOUT_SIDE_PX, encode_triplet, triplet
from imaging.transients.detect import detect_peaks
from imaging.transients.measure import Measurements, measure_candidates
from imaging.transients.psf_match import KernelFitError, fit_kernel, kernel_half_width_px
from imaging.transients.realbogus import RealBogusModel
from imaging.transients.references import Reference, ReferenceStore
from imaging.transients.sources import (
    StarTable,
    find_stars,
    psf_fwhm_px,
    subtract_background,
)
from imaging.transients.subtract import DifferenceImage, difference_image
from protos import QualityLabel, TransientCandidate, TransientSearch, stable_message_id

log = logging.getLogger(__name__)

BAD_FRAME_REASON = "frame graded bad: not searched"
WCS_MATCH_RADIUS_PX = 8.0
STAR_RESIDUAL_FWHM = 1.0
"""A detection within this many FWHM of a reference star counts as a residual of that star."""
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


def _dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
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


def find_candidates(
    frame: Frame, reference: Reference, settings: TransientSearchSettings, *, consume: bool = False
) -> Detections:
    """Difference a frame against a reference and measure what stands out; see the module.
    With `consume`, the frame's pixels become its sky-subtracted image (one 64 MB copy of a
    4096² frame less)."""
    _checked(frame.wcs is not None, "frame has no WCS: cannot align it with the reference")
    name = frame.identity.file_name
    shape = frame.data.shape
    ref_shape = reference.image.shape
    try:
        guess = wcs_transform(frame.wcs, reference.wcs, shape)
    except AlignmentError as exc:
        raise SearchSkipped(f"WCS does not overlap the reference: {exc}") from exc
    overlap = overlap_fraction(guess, shape, ref_shape)
    _checked(
        overlap >= settings.min_overlap_fraction,
        f"WCS overlaps the reference {reference.info.field_id} on {overlap:.0%} of the frame "
        f"(need {settings.min_overlap_fraction:.0%})",
    )
    new = subtract_background(frame.data, frame.saturation_adu, overwrite=consume)
    stars = find_stars(new, min_snr=settings.star_sigma)
    new_fwhm = psf_fwhm_px(stars)
    _checked(new_fwhm is not None, f"only {len(stars)} stars in the frame: cannot measure its PSF")
    assert new_fwhm is not None
    ref_fwhm = reference.info.fwhm_px
    ratio = max(new_fwhm / ref_fwhm, ref_fwhm / new_fwhm)
    _checked(
        ratio <= settings.max_fwhm_ratio,
        f"PSF too different from the reference: FWHM {new_fwhm:.2f} px vs {ref_fwhm:.2f} px "
        f"(ratio {ratio:.2f} > {settings.max_fwhm_ratio})",
    )
    alignment = refine_on_stars(guess, stars.xy, reference.stars.xy, WCS_MATCH_RADIUS_PX)
    _checked(
        alignment.matched_stars >= settings.min_kernel_stars,
        f"only {alignment.matched_stars} stars match the reference: wrong field or WCS",
    )
    ref_aligned = resample_onto_new(reference.image, alignment.transform, shape)
    ref_noise_adu = reference.info.noise_adu
    convolve_reference = new_fwhm >= ref_fwhm
    target_fwhm = max(new_fwhm, ref_fwhm)
    saturated = _dilate(new.bad, settings.saturation_margin_px + int(np.ceil(target_fwhm)))
    outside = _dilate(~np.isfinite(ref_aligned), kernel_half_width_px(target_fwhm) + 2)
    bad = saturated | outside
    ref_filled = ref_aligned  # a fresh array: filled in place (64 MB on a 4096² frame)
    ref_filled[bad] = 0.0
    del ref_aligned, saturated, outside
    stamp_xy = _kernel_stamps(stars, ref_filled, ref_noise_adu, bad, settings)
    target_variance = np.square(new.noise)
    target_variance += np.float32(ref_noise_adu**2)
    try:
        solution = fit_kernel(
            ref_filled if convolve_reference else new.image,
            new.image if convolve_reference else ref_filled,
            target_variance,
            stamp_xy,
            source_fwhm_px=min(new_fwhm, ref_fwhm),
            target_fwhm_px=target_fwhm,
            convolved="reference" if convolve_reference else "new",
            min_stamps=settings.min_kernel_stars,
        )
    except KernelFitError as exc:
        raise SearchSkipped(str(exc)) from exc
    del target_variance
    scale = solution.photometric_scale
    new_flux_per_ref = scale if convolve_reference else 1.0 / scale
    low, high = settings.photometric_scale_range
    _checked(
        low <= new_flux_per_ref <= high,
        f"flux scale new/reference {new_flux_per_ref:.2f} outside {low}-{high} (clouds? exposure?)",
    )
    depth_loss = 2.5 * np.log10(
        (new.global_noise * new_fwhm / new_flux_per_ref) / (ref_noise_adu * ref_fwhm)
    )
    _checked(
        depth_loss <= settings.max_depth_loss_mag,
        f"frame is {depth_loss:.1f} mag shallower than the reference "
        f"(limit {settings.max_depth_loss_mag} mag)",
    )
    ref_stars_new = alignment.transform.inverse().apply(reference.stars.xy)
    point_like = np.abs(reference.stars.fwhm_px / ref_fwhm - 1.0) <= POINT_SOURCE_FWHM_TOLERANCE
    difference = difference_image(
        new.image,
        new.noise,
        ref_filled,
        ref_noise_adu,
        solution,
        bad,
        target_fwhm,
        ref_stars_new[point_like],
    )
    new_image = new.image
    del new  # its noise map (64 MB on a 4096² frame) is in the difference's noise now
    objects = detect_peaks(difference, settings.detection_sigma)
    # a trail's pieces go first: a trail must not count as a failed subtraction
    on_trail = on_lines(objects["x"], objects["y"], max(1.0, TRAIL_TOLERANCE_FWHM * target_fwhm))
    if on_trail.any():
        log.info("%d detections along trails dropped frame=%s", on_trail.sum(), name)
        objects = objects[~on_trail]
    limit = max(settings.flood_floor, settings.max_detections_per_mpx * frame.data.size / 1e6)
    _checked(
        len(objects) <= limit,
        f"subtraction failed: {len(objects)} detections on the difference "
        f"(more than {limit:.0f}: {settings.max_detections_per_mpx:g} per megapixel, "
        f"{settings.flood_floor} at least)",
    )
    measured = measure_candidates(difference, objects)
    measured = measured.select((measured.snr >= settings.min_snr) & (measured.flux > 0))
    nearest = (
        cKDTree(ref_stars_new).query(np.column_stack([measured.x, measured.y]))[0]
        if len(ref_stars_new) and len(measured)
        else np.full(len(measured), np.inf)
    )
    on_star = nearest <= max(STAR_RESIDUAL_FWHM * target_fwhm, 3.0)
    residuals = int(np.count_nonzero(on_star))
    _checked(
        residuals <= settings.max_star_residuals or residuals <= len(measured) / 2,
        f"subtraction left residuals at {residuals} of {len(measured)} detections on reference "
        "stars: the PSF differs from the reference in shape (trailing, focus?)",
    )
    dipoles = on_star & (measured.dipole_ratio <= -STAR_DIPOLE_RATIO)
    if dipoles.any():
        log.info("%d dipoles on reference stars dropped frame=%s", dipoles.sum(), name)
    sharp = (measured.peak_excess >= SHARP_PEAK_SIGMA) & (
        measured.peak_over_psf >= SHARP_PEAK_RATIO
    )
    if sharp.any():
        log.info("%d detections sharper than the PSF dropped frame=%s", sharp.sum(), name)
    keep = ~(dipoles | sharp)
    measured, nearest = measured.select(keep), nearest[keep]
    stamps = np.array(
        [
            triplet(new_image, ref_filled, difference.data, x, y)
            for x, y in zip(measured.x, measured.y, strict=True)
        ]
    ).reshape(-1, 3, CUTOUT_SIDE_PX, CUTOUT_SIDE_PX)
    assert frame.wcs is not None, "the search's alignment needed the frame's WCS"
    ra, dec = frame.wcs.pixel_to_world_values(measured.x, measured.y)
    return Detections(
        difference=difference,
        measurements=measured,
        stamps=stamps,
        ra_deg=np.asarray(ra) % 360.0,
        dec_deg=np.asarray(dec),
        nearest_reference_px=np.asarray(nearest, dtype=float),
        photometric_scale=new_flux_per_ref,
        kernel_stamps=solution.stamps_used,
    )


def _kernel_stamps(
    stars: StarTable,
    reference: np.ndarray,
    reference_noise_adu: float,
    bad: np.ndarray,
    settings: TransientSearchSettings,
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
    return usable[: settings.max_kernel_stars]


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
            info = reference.field_for(frame.wcs, frame.data.shape)
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
        reason = f"transient search failed: {type(exc).__name__}: {exc}"[:256]
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

"""Reference images, one per field: what a reference is and how it is built from frames.

A field is a pointing. A reference is built from the field's best frames (`REFERENCE_MEMBERS` at
most, ranked by point-source depth): each is sky-subtracted, aligned onto the best one's grid
(WCS, refined on stars), scaled to its flux by the stars they share, and combined by an
inverse-variance mean with per-pixel clipping. It keeps its noise map, its star catalogue, its
FWHM and an empirical PSF stamp. Building holds one member's pixels at a time: the aligned
members wait in a scratch file (beside the references, when the store builds) and are combined
in row blocks. This is pixel work only; where references are kept, how a frame finds its field's
and when a better frame rebuilds one is `imaging.transients.reference_store`.
"""

import itertools
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Self

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree

from imaging.fits_reader import Frame
from imaging.transients.align import (
    PixelTransform,
    overlap_fraction,
    refine_on_stars,
    resample_onto_new,
    wcs_transform,
)
from imaging.transients.cutouts import cutout
from imaging.transients.sources import (
    SkySubtracted,
    StarTable,
    find_stars,
    psf_fwhm_px,
    subtract_background,
)
from protos.base import UtcDatetime, utc_now

log = logging.getLogger(__name__)

REFERENCE_MEMBERS = 5
COMBINE_ROWS = 256
"""Rows combined at a time: the stack of a 4096-wide, 5-frame block is 20 MB, not 320 MB."""
SAME_FIELD_OVERLAP = 0.8
STAR_SNR = 15.0
CLIP_SIGMA = 4.0
PSF_STAMP_STARS = 25


class ReferenceError(ValueError):
    """Frames that cannot make a reference (no WCS, no stars); the message says why."""


class ReferenceMember(BaseModel):
    """One frame a reference was combined from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file_name: str
    sha256: str
    date_obs: UtcDatetime | None = None
    fwhm_px: float
    noise_adu: float
    flux_scale: float = Field(description="Its star fluxes over the reference's.")
    depth_score: float = Field(description="Point-source depth: scale / (noise x FWHM).")


class ReferenceInfo(BaseModel):
    """What a stored reference is: its field, footprint, PSF, depth and the frames behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field_id: str
    ra_deg: float
    dec_deg: float
    width_px: int
    height_px: int
    pixel_scale_arcsec: float
    filter: str | None = None
    fwhm_px: float
    noise_adu: float = Field(description="Median sky noise of the combined image.")
    star_count: int
    members: list[ReferenceMember]
    built_at: UtcDatetime = Field(default_factory=utc_now)

    @property
    def depth_score(self) -> float:
        """Point-source depth of the combination, comparable with its members'."""
        return 1.0 / (self.noise_adu * self.fwhm_px)


@dataclass(frozen=True)
class Reference:
    """A reference in memory: sky-subtracted image (NaN where unusable), WCS, stars and PSF.

    `noise` is the noise map as built (1 sigma, ADU); a reference loaded from disk for a search
    leaves it there (None)."""

    image: np.ndarray
    noise: np.ndarray | None
    wcs: WCS
    stars: StarTable
    psf: np.ndarray
    info: ReferenceInfo


@dataclass(frozen=True)
class PreparedFrame:
    """A frame made ready for combination or subtraction."""

    sky: SkySubtracted
    wcs: WCS
    stars: StarTable
    fwhm_px: float
    member: ReferenceMember


def field_id_for(ra_deg: float, dec_deg: float) -> str:
    """A field's folder name from its centre, like `F150.1200+02.2000`."""
    return f"F{ra_deg % 360.0:08.4f}{dec_deg:+08.4f}"


def prepare_frame(frame: Frame) -> PreparedFrame:
    """Sky-subtract a frame and measure its stars and seeing."""
    if frame.wcs is None:
        raise ReferenceError(f"{frame.identity.file_name}: no WCS, cannot place it in a field")
    sky = subtract_background(frame.data, frame.saturation_adu)
    stars = find_stars(sky, min_snr=STAR_SNR)
    fwhm = psf_fwhm_px(stars)
    if fwhm is None:
        raise ReferenceError(f"{frame.identity.file_name}: too few stars to measure its PSF")
    noise = sky.global_noise
    member = ReferenceMember(
        file_name=frame.identity.file_name,
        sha256=frame.identity.sha256,
        date_obs=frame.identity.date_obs,
        fwhm_px=fwhm,
        noise_adu=noise,
        flux_scale=1.0,
        depth_score=1.0 / (noise * fwhm),
    )
    return PreparedFrame(sky=sky, wcs=frame.wcs, stars=stars, fwhm_px=fwhm, member=member)


@dataclass(frozen=True)
class AnchorGrid:
    """What a reference's frames are aligned to: the deepest frame's grid, stars and seeing
    (not its pixels, which go once they are combined)."""

    wcs: WCS
    shape: tuple[int, int]
    stars: StarTable
    fwhm_px: float


def _flux_scale(anchor: AnchorGrid, other: PreparedFrame, transform: PixelTransform) -> float:
    """Median ratio other / anchor of the fluxes of the stars both hold (1 if none match)."""
    mapped = transform.inverse().apply(other.stars.xy)
    distance, index = cKDTree(anchor.stars.xy).query(mapped, distance_upper_bound=2.0)
    matched = np.isfinite(distance)
    if matched.sum() < 3:
        return 1.0
    return float(np.median(other.stars.flux[matched] / anchor.stars.flux[index[matched]]))


@dataclass(frozen=True)
class MemberSource:
    """A frame to combine, prepared only when its turn comes: a reference of five 4096² frames
    never holds more than one of them in memory."""

    member: ReferenceMember
    prepare: Callable[[], PreparedFrame]

    @classmethod
    def ready(cls, frame: PreparedFrame) -> Self:
        return cls(frame.member, lambda: frame)


@dataclass(frozen=True)
class Combined:
    """A combined reference image, its noise, its members and the grid it is aligned to."""

    image: np.ndarray
    noise: np.ndarray
    members: list[ReferenceMember]
    anchor: AnchorGrid


def combine(sources: list[MemberSource], spill_dir: Path | None = None) -> Combined:
    """Align, scale and combine frames on the deepest one's grid.

    Frames are prepared one at a time and their aligned images and variances spill to scratch
    files in `spill_dir` (on disk: not a RAM-backed /tmp), then combined in row blocks.
    The image is NaN where no frame has good data.
    """
    ranked = sorted(sources, key=lambda f: f.member.depth_score, reverse=True)
    first = ranked[0].prepare()
    anchor = AnchorGrid(first.wcs, first.sky.image.shape, first.stars, first.fwhm_px)
    shape = anchor.shape
    # one frame's pixels at a time: the first is let go once the second is asked for
    prepared = itertools.chain(iter([first]), (source.prepare() for source in ranked[1:]))
    del first
    members = []
    with tempfile.TemporaryDirectory(prefix=".combine-", dir=spill_dir) as scratch:
        images, variances = Path(scratch) / "images.f32", Path(scratch) / "variances.f32"
        with images.open("wb") as image_out, variances.open("wb") as variance_out:
            for slot, frame in enumerate(prepared):
                aligned = _aligned(anchor, frame, is_anchor=slot == 0)
                if aligned is None:
                    del frame  # before the next one is prepared
                    continue
                image, noise, scale = aligned
                image.astype(np.float32, copy=False).tofile(image_out)
                np.square(noise, dtype=np.float32).tofile(variance_out)
                depth = scale / (frame.member.noise_adu * frame.fwhm_px)
                members.append(
                    frame.member.model_copy(update={"flux_scale": scale, "depth_score": depth})
                )
                del frame, aligned, image, noise
        combined = np.full(shape, np.nan, dtype=np.float32)
        combined_noise = np.full(shape, np.nan, dtype=np.float32)
        for top in range(0, shape[0], COMBINE_ROWS):  # row blocks bound the memory
            rows = slice(top, min(top + COMBINE_ROWS, shape[0]))
            combined[rows], combined_noise[rows] = _combine_block(
                _spilled_rows(images, len(members), shape, rows),
                _spilled_rows(variances, len(members), shape, rows),
            )
    return Combined(combined, combined_noise, members, anchor)


def _spilled_rows(path: Path, count: int, shape: tuple[int, ...], rows: slice) -> np.ndarray:
    """Rows of each of `count` float32 images written one after another to `path`, read
    with plain file reads (a memory map would count every page it touched as resident)."""
    height, width = shape
    assert rows.start is not None and rows.stop is not None
    block = []
    for slot in range(count):
        offset = 4 * width * (slot * height + rows.start)
        values = np.fromfile(
            path, dtype=np.float32, count=width * (rows.stop - rows.start), offset=offset
        )
        block.append(values.reshape(-1, width))
    return np.array(block)


def _aligned(
    anchor: AnchorGrid, frame: PreparedFrame, *, is_anchor: bool
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A frame's sky image (NaN where bad) and noise on the anchor's grid in the anchor's flux
    units, with its flux scale; None if it is of another field."""
    shape = anchor.shape
    if is_anchor:
        image = frame.sky.image.copy()
        image[frame.sky.bad] = np.nan
        return image, frame.sky.noise, 1.0
    guess = wcs_transform(anchor.wcs, frame.wcs, shape)
    if overlap_fraction(guess, shape, frame.sky.image.shape) < SAME_FIELD_OVERLAP:
        log.warning("reference skips %s: another field", frame.member.file_name)
        return None
    alignment = refine_on_stars(guess, anchor.stars.xy, frame.stars.xy, 5.0)
    scale = _flux_scale(anchor, frame, alignment.transform)
    masked = np.where(frame.sky.bad, np.float32(np.nan), frame.sky.image)
    image = resample_onto_new(masked, alignment.transform, shape)
    image /= np.float32(scale)
    noise = resample_onto_new(frame.sky.noise, alignment.transform, shape)
    noise /= np.float32(scale)
    return image, noise, scale


def _combine_block(stack: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance mean of aligned images (frames x rows x columns), each pixel clipped
    against the median when there are three frames or more; NaN where no frame has data."""
    weight = np.where(np.isfinite(stack), 1.0 / variances, 0.0).astype(np.float32)
    if len(stack) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels no frame covers
            median = np.nanmedian(stack, axis=0)
        weight[np.abs(stack - median) > CLIP_SIGMA * np.sqrt(variances)] = 0.0
    total = weight.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.nansum(np.where(weight > 0, stack, 0.0) * weight, axis=0) / total
        noise = 1.0 / np.sqrt(total)
    image[total == 0] = np.nan
    noise[total == 0] = np.nan
    return image.astype(np.float32), noise.astype(np.float32)


def empirical_psf(image: np.ndarray, stars: StarTable, fwhm_px: float) -> np.ndarray:
    """The median of flux-normalised stamps of bright, round, unsaturated stars (NaN pixels
    ignored)."""
    side = 2 * int(np.ceil(2.5 * fwhm_px)) + 1
    usable = stars.select((stars.ellipticity < 0.3) & (stars.snr > 30))
    stamps = [
        cutout(image, x, y, side) / f
        for x, y, f in zip(
            usable.x[:PSF_STAMP_STARS],
            usable.y[:PSF_STAMP_STARS],
            usable.flux[:PSF_STAMP_STARS],
            strict=True,
        )
    ]
    if not stamps:
        return np.zeros((side, side), dtype=np.float32)
    psf = np.nan_to_num(np.nanmedian(np.array(stamps), axis=0))
    return (psf / max(float(psf.sum()), 1e-12)).astype(np.float32)


def build_reference(frames: list[Frame], field_id: str | None = None) -> Reference:
    """A reference from the given frames of one field (their best `REFERENCE_MEMBERS`). Each
    frame is prepared once to rank it and again when it is combined, so only one frame's
    pixels are in memory at a time."""
    sources, problems = [], []
    for frame in frames:
        try:
            member = prepare_frame(frame).member
        except ReferenceError as exc:
            log.warning("reference skips a frame: %s", exc)
            problems.append(str(exc))
            continue
        sources.append(MemberSource(member, partial(prepare_frame, frame)))
    if not sources:
        raise ReferenceError(f"no usable frame to build a reference from ({'; '.join(problems)})")
    sources.sort(key=lambda f: f.member.depth_score, reverse=True)
    return reference_from(sources[:REFERENCE_MEMBERS], field_id)


def reference_from(
    sources: list[MemberSource], field_id: str | None, spill_dir: Path | None = None
) -> Reference:
    """A reference combined from `sources` (see `combine`), its field named `field_id` or after
    its centre."""
    combined = combine(sources, spill_dir)
    image, noise, anchor = combined.image, combined.noise, combined.anchor
    stars = reference_stars(image, noise)
    fwhm = psf_fwhm_px(stars) or anchor.fwhm_px
    height, width = image.shape
    centre = anchor.wcs.pixel_to_world_values((width - 1) / 2.0, (height - 1) / 2.0)
    ra_deg, dec_deg = float(centre[0]) % 360.0, float(centre[1])
    info = ReferenceInfo(
        field_id=field_id or field_id_for(ra_deg, dec_deg),
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        width_px=width,
        height_px=height,
        pixel_scale_arcsec=float(np.mean(proj_plane_pixel_scales(anchor.wcs)) * 3600.0),
        fwhm_px=fwhm,
        noise_adu=float(np.nanmedian(noise)),
        star_count=len(stars),
        members=combined.members,
    )
    return Reference(
        image=image,
        noise=noise,
        wcs=anchor.wcs,
        stars=stars,
        psf=empirical_psf(image, stars, fwhm),
        info=info,
    )


def reference_stars(image: np.ndarray, noise: np.ndarray) -> StarTable:
    """A combined image's star catalogue. Its NaN (unusable) pixels are filled for the search and
    put back after it: no full-frame copies of a reference that may be 4096² in size."""
    bad, unknown_noise = ~np.isfinite(image), ~np.isfinite(noise)
    image[bad], noise[unknown_noise] = 0.0, 1e6
    try:
        return find_stars(SkySubtracted(image, noise, bad), min_snr=STAR_SNR)
    finally:
        image[bad], noise[unknown_noise] = np.nan, np.nan

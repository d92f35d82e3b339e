"""Calibrating a raw frame with master bias, dark and flat frames, and combining those masters,
with ccdproc (the astropy package for CCD reduction).

A raw CCD frame carries the camera's bias (an offset of hundreds to thousands of ADU, with a
pattern), dark current (growing with the exposure) and the optics' uneven response (vignetting,
dust): the frame's background level, its sky brightness and its stars' fluxes are only right
once they are removed. `calibrate_frame` applies what masters there are, in the standard order,
with ccdproc's `subtract_bias`, `subtract_dark` (the master dark scaled to the frame's exposure
time) and `flat_correct`; a master that does not fit the frame (another size or binning) is not
applied, and the frame's notes say so, naming both geometries. `combine_masters` makes a master
from its frames with ccdproc's `combine`: a sigma-clipped median, tile by tile within a memory
bound.

Saturated pixels stay saturated: a pixel at the raw saturation level is set, after
calibration, to the calibrated frame's saturation level (the raw level less the masters' median
bias and dark), which becomes the frame's `saturation_adu`; otherwise the metrics would miss
every saturated star once the bias is gone.
"""

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from imaging.fits_header import DEFAULT_SATURATION_ADU, binning
from imaging.fits_reader import Frame
from imaging.frame_kind import FrameKind

if TYPE_CHECKING:
    from astropy.nddata import CCDData

CLIP_SIGMA = 3.0
"""Pixels further than 3 robust sigma (MAD) from the median of their stack are left out of the
combination: cosmic rays, a satellite in a twilight flat, a star in a sky flat."""
LEVEL_SAMPLE_PX = 262_144
"""A master's median level is taken on a strided sample of about 256k pixels: a full-frame
median of a 4096x4096 master costs a quarter of a second, the sample a few milliseconds."""
COMBINE_MEMORY_BYTES = 256 * 1024 * 1024
"""ccdproc's `combine` splits the frames into tiles so that one tile of every frame fits in
this much memory: 25 frames of 4096x4096 are combined in about 25 tiles on an edge computer."""
FLAT_MIN_RESPONSE = 0.05
"""A pixel of the normalised master flat below 5 % of the median (a dead column, the edge of
a vignetted corner) is set to 0.05, as ccdproc's `min_value` would: it is no less wrong, but it
does not blow up to infinity. A pixel no flat saw (NaN in every frame) is set to 1: left as it
is, not made NaN (ccdproc's `flat_correct` divides by the flat's mean, which one NaN spoils)."""


@dataclass(frozen=True)
class Geometry:
    """The pixel grid a frame or master is on: its shape (rows, columns) and the binning."""

    shape: tuple[int, int]
    binning: tuple[int, int]

    def describe(self) -> str:
        rows, columns = self.shape
        return f"{columns}x{rows} px binned {self.binning[0]}x{self.binning[1]}"

    def slug(self) -> str:
        """The geometry in a file name: '2048x2048-bin1x1'."""
        rows, columns = self.shape
        return f"{columns}x{rows}-bin{self.binning[0]}x{self.binning[1]}"


def geometry_of(frame: Frame) -> Geometry:
    """The grid the frame's pixels are on."""
    rows, columns = frame.data.shape
    return Geometry((rows, columns), binning(frame.header))


@dataclass(frozen=True)
class Master:
    """A master calibration frame: its pixels (float32 ADU, flats normalised to a median of 1)
    and what it is for."""

    kind: FrameKind
    data: np.ndarray
    geometry: Geometry
    frames: int
    exptime_s: float | None = None
    """A dark's exposure time (its dark current is scaled from it)."""
    filter: str | None = None
    """A flat's filter."""
    level_adu: float = field(init=False)
    """The master's median (on a strided sample): what it takes off a saturated pixel."""

    def __post_init__(self) -> None:
        stride = max(1, int(np.sqrt(self.data.size / LEVEL_SAMPLE_PX)))
        object.__setattr__(self, "level_adu", float(np.nanmedian(self.data[::stride, ::stride])))

    def describe(self) -> str:
        return f"master {self.kind.value} ({self.geometry.describe()}, {self.frames} frames)"


@dataclass(frozen=True)
class MasterSet:
    """The masters chosen for one frame, and why any kind is missing or unusable."""

    bias: Master | None = None
    dark: Master | None = None
    flat: Master | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalibratedFrame:
    """A frame after calibration: what was applied and what was not, and why."""

    frame: Frame
    applied: tuple[FrameKind, ...]
    notes: tuple[str, ...]

    @property
    def bias_removed(self) -> bool:
        return FrameKind.BIAS in self.applied


def mismatch_note(kind: FrameKind, master: Geometry, frame: Geometry) -> str:
    """The note for a master on another grid than the frame's, naming both."""
    return f"master {kind.value} is {master.describe()}, the frame {frame.describe()}: not applied"


def geometry_mismatch(master: Master, geometry: Geometry) -> str | None:
    """Why `master` cannot be applied to a frame on `geometry` (None when it can)."""
    if master.geometry == geometry and master.data.shape == geometry.shape:
        return None
    rows, columns = master.data.shape
    return mismatch_note(master.kind, Geometry((rows, columns), master.geometry.binning), geometry)


def calibrate_frame(
    frame: Frame, masters: MasterSet, *, saturation_adu: float | None = None
) -> CalibratedFrame:
    """The frame with the masters that fit it applied: bias, then the dark scaled to the frame's
    exposure, then the flat. A dark or flat needs the bias removed first (masters of dark and
    flat are bias-free); each master that is not applied adds a note saying why.
    `saturation_adu` is the raw frame's saturation level (default: the frame's own, then
    `DEFAULT_SATURATION_ADU`, as scoring assumes)."""
    geometry = geometry_of(frame)
    notes = list(masters.notes)
    usable: dict[FrameKind, Master] = {}
    for master in (masters.bias, masters.dark, masters.flat):
        if master is None:
            continue
        mismatch = geometry_mismatch(master, geometry)
        if mismatch is None:
            usable[master.kind] = master
        else:
            notes.append(mismatch)
    if not usable:
        return CalibratedFrame(frame, (), tuple(notes))
    if FrameKind.BIAS not in usable:
        kinds = " and ".join(f"master {kind.value}" for kind in usable)
        notes.append(f"{kinds} not applied: it needs the master bias removed first")
        return CalibratedFrame(frame, (), tuple(notes))
    exptime = frame.identity.exptime_s
    if FrameKind.DARK in usable and not exptime:
        del usable[FrameKind.DARK]
        notes.append(f"master dark not applied: EXPTIME is {exptime} on a light frame")
    data = _apply(frame.data, usable, exptime)
    saturation = saturation_adu or frame.saturation_adu or DEFAULT_SATURATION_ADU
    level = _keep_saturated(frame.data, data, saturation, usable, exptime)
    calibrated = dataclasses.replace(frame, data=data, saturation_adu=level)
    return CalibratedFrame(calibrated, tuple(usable), tuple(notes))


def _ccd(data: np.ndarray) -> "CCDData":
    from astropy.nddata import CCDData

    return CCDData(data, unit="adu")


def _apply(data: np.ndarray, masters: dict[FrameKind, Master], exptime: float | None) -> np.ndarray:
    """The pixels with the masters applied by ccdproc, as float32, non-finite pixels as NaN."""
    import astropy.units as u
    import ccdproc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN pixels, a dead pixel of the flat
        ccd = ccdproc.subtract_bias(_ccd(data), _ccd(masters[FrameKind.BIAS].data))
        dark = masters.get(FrameKind.DARK)
        if dark is not None and exptime and dark.exptime_s:
            ccd = ccdproc.subtract_dark(
                ccd,
                _ccd(dark.data),
                dark_exposure=dark.exptime_s * u.s,
                data_exposure=exptime * u.s,
                scale=True,
            )
        flat = masters.get(FrameKind.FLAT)
        if flat is not None:
            ccd = ccdproc.flat_correct(ccd, _ccd(flat.data))  # clamped and normalised already
    pixels = np.asarray(ccd.data, dtype=np.float32)
    pixels[~np.isfinite(pixels)] = np.nan
    return pixels


def _keep_saturated(
    raw: np.ndarray,
    calibrated: np.ndarray,
    saturation_adu: float,
    masters: dict[FrameKind, Master],
    exptime: float | None,
) -> float:
    """Lift pixels saturated in the raw frame to the calibrated saturation level (the raw level
    less the median bias and scaled dark), and return that level."""
    offset = masters[FrameKind.BIAS].level_adu
    dark = masters.get(FrameKind.DARK)
    if dark is not None and exptime and dark.exptime_s:
        offset += dark.level_adu * exptime / dark.exptime_s
    level = saturation_adu - offset
    with np.errstate(invalid="ignore"):
        saturated = (raw >= saturation_adu) & (raw < np.inf)  # an infinite pixel is no value
    calibrated[saturated] = np.fmax(calibrated[saturated], np.float32(level))
    return level


def combine_masters(paths: list[Path], *, scale: np.ndarray | None = None) -> np.ndarray:
    """The sigma-clipped median of the frames in `paths` (float32 FITS in their primary HDU),
    each multiplied by its `scale` first when given (flats of different levels), combined by
    ccdproc tile by tile within `COMBINE_MEMORY_BYTES`. NaN pixels are left out."""
    import ccdproc
    from astropy.stats import mad_std

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)  # NaN pixels: left out, as meant
        master = ccdproc.combine(
            [str(path) for path in paths],
            method="median",
            scale=scale,
            sigma_clip=True,
            sigma_clip_low_thresh=CLIP_SIGMA,
            sigma_clip_high_thresh=CLIP_SIGMA,
            sigma_clip_func=np.ma.median,
            sigma_clip_dev_func=mad_std,
            mem_limit=COMBINE_MEMORY_BYTES,
            dtype=np.float32,
            unit="adu",
            memmap=True,
        )
    pixels = np.asarray(master.data, dtype=np.float32)
    if master.mask is not None:
        pixels[master.mask] = np.nan
    return pixels


def normalised_flat(combined: np.ndarray) -> np.ndarray:
    """A combined flat divided by its median, so that applying it keeps the frame's level,
    with pixels no flat saw set to 1 and dead ones raised to `FLAT_MIN_RESPONSE`."""
    level = float(np.nanmedian(combined))
    if not np.isfinite(level) or level <= 0:
        raise ValueError(f"a flat's median is {level:g}: it cannot be normalised")
    flat = np.nan_to_num(combined / np.float32(level), nan=1.0, posinf=1.0, neginf=1.0)
    return np.maximum(flat, np.float32(FLAT_MIN_RESPONSE)).astype(np.float32)

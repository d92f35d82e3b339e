"""What kind of frame a file holds: a night-sky exposure to grade, a calibration frame (bias,
dark, flat) to collect, or an image that is not a telescope's view of the night sky at all.

Cameras write their bias, dark and flat frames into the same folder as the night's exposures;
grading a bias as sky raises a bad-frame alarm for a frame that is doing its job.
`classify_frame` decides, in this order:

1. **Not the sky** (whatever the header's type says, unless it names a calibration frame): a WCS
   whose axes are the Sun's or a planet's (`HPLN`/`HPLT` ..., `imaging.fits_header`), a field
   wider than `ALL_SKY_MIN_FIELD_DEG` (an all-sky camera or an all-sky map, often in a ZEA or
   ARC projection), a type keyword naming a difference image or a lamp exposure, or the pixels
   of a difference image (`_difference_evidence`).
2. **The header's word**: IMAGETYP, then OBSTYPE and the other type keywords, in the spellings
   cameras use ('Bias Frame', 'ZERO', 'Dark Frame', 'Flat Field', 'SKYFLAT', 'Light Frame',
   'OBJECT', 'SCIENCE', ESO's 'FLAT,LAMP' ...).
3. **The pixels, when the header is silent**, and conservatively: a zero-second exposure whose
   pixels hold no source is a bias; a bright, starless frame is a flat. Anything with a source
   in it stays a sky frame: a star field is never called a flat. Darks are recognised by their
   header only (a dark and a clouded night frame look alike).

Pure functions of the frame's header and pixels; the site routes what they say
(`site_agent.pipeline`).
"""

import math
import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import sep
from astropy.io import fits
from astropy.stats import mad_std
from astropy.wcs.utils import proj_plane_pixel_scales

from imaging.fits_header import non_sky_coordinates
from imaging.fits_reader import Frame

NOT_SKY_PREFIX = "not a sky frame: "
CALIBRATION_PREFIX = "calibration frame: "

TYPE_KEYWORDS = ("IMAGETYP", "OBSTYPE", "IMGTYPE", "IMTYPE", "FRAMETYP", "HIERARCH ESO DPR TYPE")
"""Where cameras and archives say what an exposure is, most common first: IMAGETYP (IRAF,
MaxIm DL, NINA, SBIG, ASCOM), OBSTYPE (NOIRLab, LCO), then rarer spellings and ESO's DPR TYPE."""

ALL_SKY_MIN_FIELD_DEG = 100.0
"""A field wider than this is an all-sky image or map, not a telescope's field. The widest
survey cameras in use see about 53 x 74 degrees (MASCARA's 24 mm lenses); an all-sky camera's
fisheye sees 180 degrees, an all-sky map 360."""

CONTENT_SOURCE_SIGMA = 5.0
CONTENT_SOURCE_MIN_AREA_PX = 5
"""A source, for telling calibration frames from sky by their pixels: 5 connected pixels 5
sigma above the local background. Noise makes one such group in about 10^12 frames; a cosmic
ray usually lights fewer pixels; a star field has hundreds."""
CONTENT_SAMPLE_PX = 65_536
"""The level and noise of a frame are measured on a strided sample of about 64k pixels (every
16th pixel each way of a 4096x4096 frame): the median and the MAD's standard deviation are then
good to a percent, in a few milliseconds."""
BIAS_MAX_NOISE_ADU = 100.0
"""A zero-second frame spread wider than this (MAD standard deviation) is not a bias: read
noise is 1-20 ADU on the cameras we know (6 e- at 1.5 e-/ADU is 4 ADU; a CMOS camera at 0.1
e-/ADU with 2 e- is 20 ADU), and even a bias with amplifier glow stays far below 100."""
FLAT_MIN_LEVEL_FRACTION = 0.2
FLAT_MAX_LEVEL_FRACTION = 0.9
"""A starless frame is called a flat by its pixels only when its median lies between 20 % and
90 % of the saturation level: flats are exposed to 30-60 % of the full well, while a night
sky, even under a full Moon, stays below a few percent of it; above 90 % the frame is
saturated, not a flat."""
DIFFERENCE_MAX_LEVEL_SIGMA = 3.0
DIFFERENCE_MIN_NEGATIVE_PX = 25
DIFFERENCE_MIN_NEGATIVE_RATIO = 0.3
"""A difference image sits at zero (within 3 noise sigma) and its residuals go both ways: at
least 25 pixels 5 sigma below zero and at least 0.3 times as many as above. The published
DECam difference (`decam-sfft/FinalDifference.fits`) has 114 below and 157 above; the ten
sky-subtracted DECam exposures it came from, also at zero, have at most 2 below against
450-1100 above: stars are positive only."""

_NOT_SKY_TYPES = {
    "diff": "a difference image",
    "difference": "a difference image",
    "subtracted": "a difference image",
    "subtraction": "a difference image",
    "arc": "an arc-lamp exposure",
    "comp": "an arc-lamp exposure",
    "comparison": "an arc-lamp exposure",
    "wave": "an arc-lamp exposure",
}
_LIGHT_TYPES = frozenset(
    {"light", "object", "science", "sci", "expose", "sky", "std", "standard", "focus", "target"}
)


class FrameKind(StrEnum):
    """What an exposure is for."""

    LIGHT = "light"
    BIAS = "bias"
    DARK = "dark"
    FLAT = "flat"


@dataclass(frozen=True)
class FrameClass:
    """What a frame is, what says so, and (for an image that is not of the night sky) why."""

    kind: FrameKind
    evidence: str
    """The card (`IMAGETYP='Bias Frame'`) or the pixels' measure that decided."""
    not_sky: str | None = None
    """Why the image is not a telescope's view of the night sky; None when it is."""

    @property
    def is_calibration(self) -> bool:
        return self.not_sky is None and self.kind is not FrameKind.LIGHT

    def describe(self) -> str:
        """One line for an operator: 'calibration frame: bias (IMAGETYP='ZERO')', 'not a sky
        frame: ...', or 'light frame (...)'."""
        if self.not_sky is not None:
            return NOT_SKY_PREFIX + self.not_sky
        if self.is_calibration:
            return f"{CALIBRATION_PREFIX}{self.kind.value} ({self.evidence})"
        return f"light frame ({self.evidence})"


def classify_frame(frame: Frame) -> FrameClass:
    """What `frame` is: see the module's docstring for the order of the evidence."""
    said = header_kind(frame.header)
    if said is not None and said.kind is not FrameKind.LIGHT:
        return said
    not_sky = _not_sky(frame)
    if not_sky is not None:
        return FrameClass(FrameKind.LIGHT, said.evidence if said else "", not_sky)
    if said is not None:
        return said
    exptime = frame.identity.exptime_s
    return content_kind(frame.data, exptime_s=exptime, saturation_adu=frame.saturation_adu)


def header_kind(header: fits.Header) -> FrameClass | None:
    """What the type keywords say, or None when none says anything this module knows."""
    for keyword in TYPE_KEYWORDS:
        value = header.get(keyword)
        if not isinstance(value, str) or not value.strip():
            continue
        evidence = f"{keyword.removeprefix('HIERARCH ')}={value.strip()!r}"
        words = re.findall(r"[a-z]+", value.lower())
        if any("dark" in word for word in words):
            return FrameClass(FrameKind.DARK, evidence)
        if any("flat" in word for word in words):
            return FrameClass(FrameKind.FLAT, evidence)
        if any("bias" in word or word in ("zero", "offset") for word in words):
            return FrameClass(FrameKind.BIAS, evidence)
        for word in words:
            if word in _NOT_SKY_TYPES:
                return FrameClass(FrameKind.LIGHT, evidence, f"{_NOT_SKY_TYPES[word]} ({evidence})")
        if any(word in _LIGHT_TYPES for word in words):
            return FrameClass(FrameKind.LIGHT, evidence)
    return None


def _not_sky(frame: Frame) -> str | None:
    """Why a frame is not a telescope's view of the night sky, from its WCS and pixels."""
    coordinates = non_sky_coordinates(frame.header)
    if coordinates is not None:
        return f"the WCS is not on the sky ({coordinates})"
    field = _field_width_deg(frame)
    if field is not None and field >= ALL_SKY_MIN_FIELD_DEG:
        projection = frame.wcs.wcs.ctype[0][5:].strip("-") if frame.wcs is not None else ""
        return (
            f"an all-sky image ({projection or 'its'} projection spans {field:.0f} degrees, "
            f"above the {ALL_SKY_MIN_FIELD_DEG:.0f} degrees of any telescope's field)"
        )
    return _difference_evidence(frame.data)


def _field_width_deg(frame: Frame) -> float | None:
    """The widest side of the frame on the sky, from the WCS's pixel scale at its reference."""
    if frame.wcs is None:
        return None
    try:
        scales = proj_plane_pixel_scales(frame.wcs)
    except (ValueError, IndexError):
        return None
    height, width = frame.data.shape
    field = max(float(scales[0]) * width, float(scales[1]) * height)
    return field if math.isfinite(field) else None


def _difference_evidence(data: np.ndarray) -> str | None:
    """Why the pixels look like a difference image (zero level, residuals of both signs), or
    None. A raw frame's bias lifts its level far above its noise: one strided pass settles it."""
    level, noise = _level_and_noise(data)
    if noise <= 0 or abs(level) > DIFFERENCE_MAX_LEVEL_SIGMA * noise:
        return None
    with np.errstate(invalid="ignore"):
        below = int(np.count_nonzero(data < level - CONTENT_SOURCE_SIGMA * noise))
        above = int(np.count_nonzero(data > level + CONTENT_SOURCE_SIGMA * noise))
    if below < DIFFERENCE_MIN_NEGATIVE_PX or below < DIFFERENCE_MIN_NEGATIVE_RATIO * above:
        return None
    return (
        f"a difference image (level {level:.3g} ADU at zero within its noise {noise:.3g} ADU, "
        f"{below} pixels {CONTENT_SOURCE_SIGMA:.0f} sigma below it and {above} above)"
    )


def content_kind(
    data: np.ndarray, *, exptime_s: float | None, saturation_adu: float | None
) -> FrameClass:
    """What the pixels say when the header does not: bias, flat, or (whenever in doubt) light."""
    level, noise = _level_and_noise(data)
    if exptime_s == 0.0:
        if noise <= BIAS_MAX_NOISE_ADU and not _has_sources(data):
            return FrameClass(
                FrameKind.BIAS, f"EXPTIME = 0, no source, noise {noise:.3g} ADU: a bias"
            )
        return FrameClass(FrameKind.LIGHT, "EXPTIME = 0 yet the pixels hold light")
    fraction = level / saturation_adu if saturation_adu else 0.0
    if FLAT_MIN_LEVEL_FRACTION <= fraction <= FLAT_MAX_LEVEL_FRACTION and not _has_sources(data):
        return FrameClass(
            FrameKind.FLAT, f"no source, level at {fraction:.0%} of saturation: a flat"
        )
    return FrameClass(
        FrameKind.LIGHT, "no type keyword, and nothing in the pixels says calibration"
    )


def _level_and_noise(data: np.ndarray) -> tuple[float, float]:
    """The median and the MAD's standard deviation of a strided sample of finite pixels."""
    stride = max(1, math.isqrt(data.size // CONTENT_SAMPLE_PX))
    sample = data[::stride, ::stride]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(np.median(finite)), float(mad_std(finite))


def _has_sources(data: np.ndarray) -> bool:
    """Whether any source (`CONTENT_SOURCE_MIN_AREA_PX` pixels `CONTENT_SOURCE_SIGMA` above the
    local background) is in the frame. When sep cannot tell (a frame too crowded for its
    buffers), the answer is yes: only a frame shown empty is called a calibration frame."""
    pixels = np.ascontiguousarray(data, dtype=np.float32)
    mask = ~np.isfinite(pixels)
    if mask.any():
        pixels = np.where(mask, np.float32(0), pixels)
    try:
        background = sep.Background(pixels, mask=mask if mask.any() else None, bw=64, bh=64)
        residual = pixels - background.back()
        sources = sep.extract(
            residual,
            CONTENT_SOURCE_SIGMA,
            err=background.globalrms,
            mask=mask if mask.any() else None,
            minarea=CONTENT_SOURCE_MIN_AREA_PX,
        )
    except Exception:  # sep's buffers overflow on crowded frames: that is a frame with sources
        return True
    return len(sources) > 0

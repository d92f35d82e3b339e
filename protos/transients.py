"""Transient search results: candidates found by difference imaging, with compact image cutouts,
and, per frame, whether it was searched and why not."""

import base64
import binascii
import zlib
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from protos.base import ContractModel, FleetMessage, Sha256, UtcDatetime
from protos.frames import FrameIdentity

SKIPPED_REASON_MAX_CHARS = 256
"""The longest reason a frame's transient search was skipped (one sentence with its figures)."""
MAX_CUTOUT_SIDE = 128
SEARCHED_RADIUS_MAX_DEG = 10.0
"""The widest radius a frame's search may claim to cover (degrees): a 20-degree field is wider
than any survey camera's; the centre's upper-limit lookup relies on this bound."""


class EncodedArray(ContractModel):
    """A small 2-D float32 image: little-endian bytes, zlib-compressed, base64 text.

    Use `from_raw`/`raw` with `numpy.frombuffer(..., dtype='<f4').reshape(shape)`; this package
    stays free of numpy so every consumer can read the contract.
    """

    dtype: Literal["<f4"] = "<f4"
    shape: tuple[int, int]
    encoding: Literal["zlib+base64"] = "zlib+base64"
    data: str = Field(max_length=200_000)

    @model_validator(mode="after")
    def _data_matches_shape(self) -> Self:
        ny, nx = self.shape
        if not (0 < ny <= MAX_CUTOUT_SIDE and 0 < nx <= MAX_CUTOUT_SIDE):
            raise ValueError(f"cutout shape {self.shape} outside 1..{MAX_CUTOUT_SIDE} per side")
        needed = ny * nx * 4
        try:
            inflater = zlib.decompressobj()
            # One byte more than the shape needs tells a wrong size, and bounds what a zlib
            # bomb makes us allocate (200 kB of text inflates to about 150 MB of zeros).
            raw = inflater.decompress(base64.b64decode(self.data, validate=True), needed + 1)
        except (binascii.Error, zlib.error) as exc:
            raise ValueError(f"cutout data is not zlib+base64: {exc}") from exc
        if len(raw) > needed:
            raise ValueError(f"cutout holds more than the {needed} bytes shape {self.shape} needs")
        if len(raw) < needed:
            raise ValueError(f"cutout holds {len(raw)} bytes, shape {self.shape} needs {needed}")
        if not inflater.eof:
            raise ValueError("cutout data is not zlib+base64: incomplete or truncated stream")
        return self

    @classmethod
    def from_raw(cls, shape: tuple[int, int], raw: bytes) -> Self:
        """Encode little-endian float32 bytes of the given shape."""
        return cls(shape=shape, data=base64.b64encode(zlib.compress(raw, 6)).decode("ascii"))

    def raw(self) -> bytes:
        """The little-endian float32 bytes."""
        return zlib.decompress(base64.b64decode(self.data))


class TransientCutouts(ContractModel):
    """New, reference and difference stamps centred on a candidate."""

    new: EncodedArray
    reference: EncodedArray
    difference: EncodedArray


class TransientCandidate(FleetMessage):
    """One detection on a difference image that survived the site's real/bogus filter."""

    KIND: ClassVar[str] = "transient-candidate"

    frame_sha256: Sha256
    frame_file_name: str = Field(min_length=1, max_length=512)
    observed_at: UtcDatetime
    ra_deg: float = Field(ge=0.0, lt=360.0)
    dec_deg: float = Field(ge=-90.0, le=90.0)
    x_px: float
    y_px: float
    flux_adu: float
    flux_err_adu: float = Field(gt=0.0)
    snr: float
    mag: float | None = Field(default=None, description="Calibrated magnitude, if calibrated.")
    mag_err: float | None = Field(default=None, ge=0.0)
    filter: str | None = Field(default=None, max_length=32)
    fwhm_arcsec: float | None = Field(default=None, gt=0.0)
    ellipticity: float | None = Field(default=None, ge=0.0, le=1.0)
    real_bogus: float = Field(ge=0.0, le=1.0, description="Probability that it is real.")
    nearest_reference_source_arcsec: float | None = Field(default=None, ge=0.0)
    cutouts: TransientCutouts


class TransientSearch(ContractModel):
    """What happened when the site looked for transients in one frame."""

    attempted: bool
    candidates: int = Field(default=0, ge=0)
    skipped_reason: str | None = Field(default=None, max_length=SKIPPED_REASON_MAX_CHARS)
    limiting_mag: float | None = Field(
        default=None,
        gt=0.0,
        lt=40.0,
        description="5-sigma point-source limit of the difference image, from its noise and the "
        "frame's zero point: a source not detected here is fainter (None: not calibrated, or "
        "an older site).",
    )
    searched_radius_deg: float | None = Field(
        default=None,
        gt=0.0,
        le=SEARCHED_RADIUS_MAX_DEG,
        description="Radius around the frame's pointing that the search surely covered (half "
        "the frame's shorter side), for upper limits at positions without a detection.",
    )


class FrameSearched(FleetMessage):
    """The end of one frame's transient search, published after its candidates (so a reader
    that has this message has them all). The search runs after the frame's `FrameScore` is
    published, off the scoring path; `score_message_id` links the two."""

    KIND: ClassVar[str] = "frame-searched"

    frame: FrameIdentity
    score_message_id: str = Field(min_length=1, max_length=128)
    search: TransientSearch
    search_ms: float | None = Field(default=None, ge=0.0)

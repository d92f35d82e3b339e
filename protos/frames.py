"""Messages about single frames: a quality score with its reasons, or a rejection."""

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from protos.base import ContractModel, FleetMessage, Sha256, UtcDatetime

FILE_NAME_MAX_CHARS = 512
"""The longest file name a message carries (a site shows longer ones cut)."""


THUMBNAIL_MAX_CHARS = 16_000
"""Base64 characters of a frame thumbnail: a 96x96 8-bit PNG of sky is 5-9 KB, this leaves room
without letting a thumbnail crowd the bus's 1 MB message limit."""


TRANSPARENCY_NOTE_MAX_CHARS = 160


class TransparencyReference(StrEnum):
    """What a frame's transparency is relative to: a photometric catalogue of the field (an
    absolute transparency) or the site's own clearest frame of the field (relative)."""

    CATALOGUE = "catalogue"
    SITE_REFERENCE = "site_reference"


class QualityLabel(StrEnum):
    """The three quality classes, in the model's output order."""

    GOOD = "good"
    MEDIUM = "medium"
    BAD = "bad"


class SkyPosition(ContractModel):
    """An ICRS position in degrees."""

    ra_deg: float = Field(ge=0.0, lt=360.0)
    dec_deg: float = Field(ge=-90.0, le=90.0)


class FrameIdentity(ContractModel):
    """Which frame a message is about, and the header facts that place it."""

    file_name: str = Field(min_length=1, max_length=FILE_NAME_MAX_CHARS)
    sha256: Sha256
    date_obs: UtcDatetime | None = Field(default=None, description="DATE-OBS, start of exposure.")
    exptime_s: float | None = Field(default=None, ge=0.0, description="EXPTIME in seconds.")
    filter: str | None = Field(default=None, max_length=32, description="FILTER keyword.")
    pointing: SkyPosition | None = Field(default=None, description="Frame centre from the WCS.")
    width_px: int = Field(gt=0)
    height_px: int = Field(gt=0)


class ClassProbabilities(ContractModel):
    """Softmax probabilities of the three classes; they sum to one."""

    good: float = Field(ge=0.0, le=1.0)
    medium: float = Field(ge=0.0, le=1.0)
    bad: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Self:
        total = self.good + self.medium + self.bad
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"class probabilities sum to {total:.4f}, not 1")
        return self

    def of(self, label: QualityLabel) -> float:
        """The probability of one class."""
        return float(getattr(self, label.value))


class ModelRef(ContractModel):
    """The exact model that produced a result."""

    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    sha256: Sha256 | None = None


class ImageMetrics(ContractModel):
    """Physical measurements of a frame from its sources and background."""

    background_adu: float = Field(description="Median sky background level (ADU).")
    background_rms_adu: float = Field(ge=0.0, description="Sky noise (ADU).")
    fwhm_arcsec: float | None = Field(default=None, gt=0.0, description="Median stellar FWHM.")
    fwhm_error_arcsec: float | None = Field(
        default=None,
        ge=0.0,
        description="1-sigma error of the FWHM (the stars' scatter and the fit's systematics).",
    )
    ellipticity: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Median 1 - b/a of stars; trailing raises it."
    )
    source_count: int = Field(ge=0)
    saturated_fraction: float = Field(ge=0.0, le=1.0, description="Fraction of saturated pixels.")
    satellite_trails: int | None = Field(
        default=None, ge=0, description="Straight trails crossing the frame (Hough transform)."
    )
    transparency: float | None = Field(
        default=None,
        ge=0.0,
        description="Measured / expected starlight of catalogue stars (1 = photometric sky), "
        "or of the site's own reference of the field (1 = as clear as its clearest frame).",
    )
    transparency_error: float | None = Field(
        default=None, ge=0.0, description="1-sigma error of the transparency."
    )
    transparency_reference: TransparencyReference | None = Field(
        default=None, description="What the transparency is measured against."
    )
    transparency_note: str | None = Field(
        default=None,
        max_length=TRANSPARENCY_NOTE_MAX_CHARS,
        description="Why the transparency could not be measured (when it is None).",
    )
    zero_point_mag: float | None = Field(
        default=None, description="Magnitude giving 1 e-/s in this exposure, from the stars."
    )
    sky_brightness_mag_arcsec2: float | None = Field(
        default=None, description="Sky surface brightness from the calibrated background."
    )


Reason = Literal[
    "seeing", "background", "transparency", "trailing", "focus", "saturation", "artefacts"
]


class QualityReason(ContractModel):
    """One physical reason behind a quality verdict, with the threshold it was judged by."""

    reason: Reason
    value: float
    threshold: float
    unit: str = Field(max_length=16)
    message: str = Field(max_length=256)


class FrameScore(FleetMessage):
    """The quality verdict on one frame, with the measurements and reasons behind it."""

    KIND: ClassVar[str] = "frame-score"

    frame: FrameIdentity
    label: QualityLabel
    confidence: float = Field(ge=0.0, le=1.0)
    probabilities: ClassProbabilities
    model: ModelRef
    metrics: ImageMetrics
    reasons: list[QualityReason] = Field(default_factory=list, max_length=16)
    processing_ms: float | None = Field(default=None, ge=0.0)
    thumbnail_png_b64: str | None = Field(
        default=None,
        max_length=THUMBNAIL_MAX_CHARS,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="A small greyscale PNG of the frame (base64) for the console's frame browser.",
    )

    @model_validator(mode="after")
    def _confidence_is_label_probability(self) -> Self:
        if abs(self.probabilities.of(self.label) - self.confidence) > 1e-3:
            raise ValueError("confidence must equal the probability of the label")
        return self


class RejectReason(StrEnum):
    """Why a file could not be scored."""

    UNREADABLE = "unreadable"
    EMPTY_FILE = "empty_file"
    NOT_FITS = "not_fits"
    TRUNCATED = "truncated"
    NO_IMAGE_DATA = "no_image_data"
    BAD_DIMENSIONS = "bad_dimensions"
    UNSUPPORTED_BITPIX = "unsupported_bitpix"
    ALL_NAN = "all_nan"
    TOO_LARGE = "too_large"
    NOT_A_FILE = "not_a_file"


REJECTION_MESSAGE_MAX_CHARS = 1024


class FrameRejected(FleetMessage):
    """A file that arrived but could not be scored; it is quarantined at the site (then
    `quarantine_path` says where; None: it could not be, and `message` says why)."""

    KIND: ClassVar[str] = "frame-rejected"

    file_name: str = Field(min_length=1, max_length=FILE_NAME_MAX_CHARS)
    sha256: Sha256 | None = None
    reason: RejectReason
    message: str = Field(min_length=1, max_length=REJECTION_MESSAGE_MAX_CHARS)
    quarantine_path: str | None = Field(default=None, max_length=1024)

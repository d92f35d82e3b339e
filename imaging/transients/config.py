"""The limits and knobs of a transient search, in one settings model.

Quality thresholds of frames live in `imaging.quality_thresholds`; these are the limits of
difference imaging: how far two frames may disagree before a subtraction is not attempted, and
how strong a detection on the difference must be to become a candidate.
"""

from pydantic import BaseModel, ConfigDict, Field


class TransientSearchSettings(BaseModel):
    """How a site searches a frame for transients against its field's reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detection_sigma: float = Field(
        default=4.2, gt=0.0, description="Matched-filter S/N a difference peak must reach."
    )
    min_snr: float = Field(default=4.0, ge=0.0, description="PSF-photometry S/N of a candidate.")
    real_bogus_threshold: float = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Real/bogus score a candidate must reach (0.85: 0.41 false candidates per "
        "1024² frame on 200 simulated pairs, 0.28-0.53 on five seeds of 40; real/bogus version "
        "5; docs/transients.md).",
    )
    min_overlap_fraction: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Part of the frame the reference must cover."
    )
    max_fwhm_ratio: float = Field(
        default=2.5, gt=1.0, description="Largest FWHM ratio between new frame and reference."
    )
    photometric_scale_range: tuple[float, float] = Field(
        default=(0.15, 6.0), description="Allowed flux ratio new / reference (clouds, exposure)."
    )
    max_depth_loss_mag: float = Field(
        default=2.5,
        gt=0.0,
        description="How much shallower than the reference a new frame may be (point sources).",
    )
    min_kernel_stars: int = Field(
        default=5,
        ge=3,
        description="Stars needed to fit the kernel (and to match the reference): single 256² "
        "DECam exposures of a sparse field have five.",
    )
    max_kernel_stars: int = Field(default=80, ge=3)
    star_sigma: float = Field(default=15.0, gt=0.0, description="S/N of stars used as stamps.")
    max_detections_per_mpx: float = Field(
        default=250.0,
        gt=0.0,
        description="More detections per megapixel than this means a failed subtraction.",
    )
    flood_floor: int = Field(
        default=25,
        ge=1,
        description="A small frame may hold this many detections whatever its size.",
    )
    max_star_residuals: int = Field(
        default=8,
        ge=0,
        description="More detections on reference stars than this, and most of them, means "
        "the PSF could not be matched: the frame is not searched.",
    )
    max_published: int = Field(default=50, ge=1, description="Candidates published per frame.")
    saturation_margin_px: int = Field(default=4, ge=0, description="Mask grown around saturation.")

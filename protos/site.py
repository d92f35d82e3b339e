"""A site's description (location, camera) and its periodic heartbeat."""

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from protos.base import ContractModel, FleetMessage, UtcDatetime


class LinkState(StrEnum):
    """Whether the site's bus reaches the central server."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class SiteLocation(ContractModel):
    """Geodetic position of the telescope (WGS84)."""

    lat_deg: float = Field(ge=-90.0, le=90.0)
    lon_deg: float = Field(ge=-180.0, le=180.0)
    height_m: float = Field(ge=-500.0, le=9000.0)


class CameraConfig(ContractModel):
    """The detector as the pipeline needs to know it."""

    pixel_scale_arcsec: float = Field(gt=0.0, le=60.0)
    gain_e_per_adu: float = Field(gt=0.0)
    read_noise_e: float = Field(ge=0.0)
    saturation_adu: float = Field(gt=0.0)
    width_px: int = Field(gt=0, le=20_000)
    height_px: int = Field(gt=0, le=20_000)


class SiteConfig(FleetMessage):
    """What the fleet knows about one site: where it is, its horizon and its camera."""

    KIND: ClassVar[str] = "site-config"

    name: str = Field(min_length=1, max_length=64)
    location: SiteLocation
    horizon_limit_deg: float = Field(default=20.0, ge=0.0, le=80.0)
    camera: CameraConfig


class SiteConditions(ContractModel):
    """The weather and safety the site's devices report (ASCOM ObservingConditions and
    SafetyMonitor); a figure the site has no device for is None."""

    safe: bool | None = Field(default=None, description="The safety monitor's verdict.")
    cloud_cover_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    humidity_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    wind_speed_m_s: float | None = Field(default=None, ge=0.0, le=200.0)
    temperature_c: float | None = Field(default=None, ge=-100.0, le=100.0)
    sky_quality_mag_arcsec2: float | None = Field(default=None, ge=0.0, le=30.0)
    seeing_arcsec: float | None = Field(default=None, gt=0.0, le=30.0)
    read_at: UtcDatetime | None = Field(default=None, description="When the devices were read.")


class SiteHeartbeat(FleetMessage):
    """The site agent's periodic sign of life."""

    KIND: ClassVar[str] = "site-heartbeat"

    agent_version: str = Field(min_length=1, max_length=32)
    model_version: str | None = Field(default=None, max_length=32)
    queue_depths: dict[str, int] = Field(default_factory=dict)
    frames_scored: int = Field(default=0, ge=0)
    frames_rejected: int = Field(default=0, ge=0)
    last_frame_at: UtcDatetime | None = None
    disk_free_bytes: int = Field(ge=0)
    link_state: LinkState = LinkState.UNKNOWN
    uptime_s: float = Field(default=0.0, ge=0.0)
    restarts: dict[str, int] = Field(
        default_factory=dict,
        description="Parts of the agent that failed and were started again since it started, "
        "by name (e.g. nats-server, worker), with how often.",
    )
    failed_frames: int = Field(
        default=0,
        ge=0,
        description="Frames whose processing failed unexpectedly since the agent started; each "
        "is tried again at the next look at the folder.",
    )
    conditions: SiteConditions | None = Field(
        default=None, description="Weather and safety from the site's devices, if it has any."
    )

"""Settings of the site agent (`SKYFLEET_SITE_*`, flags, `[site]` in a TOML file)."""

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from fleetbus.settings import ServiceSettings
from imaging.calibration_limits import MAX_FRAMES_PER_MASTER, MIN_FRAMES_PER_MASTER
from imaging.model_signature import RELEASE_PUBLIC_KEY_PATTERN
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR, SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.config import TransientSearchSettings
from protos import CameraConfig, SiteLocation
from protos.base import SITE_ID_PATTERN
from site_agent.ingest import INCOMPLETE_TIMEOUT_S
from site_agent.learning_settings import RolloutSettings, SampleSettings


class AlpacaDevices(BaseModel):
    """The site's ASCOM Alpaca devices (`[site.alpaca]`): the server and each device's number;
    a device set to None is one the site does not have."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        min_length=3, description="host:port of the Alpaca server (mount, wheel, weather)."
    )
    camera_address: str | None = Field(
        default=None, description="host:port of the camera's Alpaca server, if not `address`."
    )
    telescope: int = Field(default=0, ge=0)
    camera: int = Field(default=0, ge=0)
    filterwheel: int | None = Field(default=0, ge=0)
    safetymonitor: int | None = Field(default=0, ge=0)
    observingconditions: int | None = Field(default=0, ge=0)
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="A plan's filter name -> the wheel's slot name (e.g. r -> Red); a filter "
        "not listed is looked up by its own name, case-insensitively.",
    )
    slew_timeout_s: float = Field(
        default=180.0, gt=0.0, description="A slew (or filter move) completes within this."
    )
    readout_timeout_s: float = Field(
        default=60.0, gt=0.0, description="An image is ready this long after its exposure."
    )
    min_moon_separation_deg: float = Field(default=20.0, ge=0.0, le=180.0)
    max_sun_altitude_deg: float = Field(default=-12.0, ge=-90.0, le=0.0)
    sky_clock_offset_s: float = Field(
        default=0.0,
        description="Simulated telescopes only: Sun, Moon and altitude are judged, and frames "
        "dated, at the real time plus this (the demo observes its simulated night).",
    )


class SiteAgentSettings(ServiceSettings):
    """How one site agent runs. Defaults suit a laptop: folders under ./var/site-<id>/."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_SITE_", extra="forbid")
    toml_table: ClassVar[str] = "site"

    site_id: str = Field(default="local", pattern=SITE_ID_PATTERN)
    watch_dir: Path = Path("var/site-local/incoming")
    work_dir: Path = Field(
        default=Path("var/site-local"), description="State, quarantine and the site's NATS data."
    )
    nats_url: str | None = Field(
        default=None, description="The site's NATS server; None starts an embedded leaf server."
    )
    hub_leaf_url: str | None = Field(
        default=None, description="The central server's leaf-node URL (nats-leaf://host:7422)."
    )
    hub_nkey_file: Path | None = Field(
        default=None,
        description="The site's seed file (site-<id>.nk of `skyfleet fleet credentials`): the "
        "embedded leaf server's link to the hub authenticates with it.",
    )
    hub_ca_file: Path | None = Field(
        default=None, description="The CA of a hub that speaks TLS: the link verifies the hub."
    )
    triton_url: str | None = Field(default=None, description="Triton gRPC address, host:port.")
    triton_repository: Path | None = Field(
        default=None,
        description="The model repository of the Triton at `triton_url` (run beside the agent "
        "with --model-control-mode=explicit), which the agent writes: releases are installed "
        "there as new version folders and loaded. None: a Triton site refuses releases.",
    )
    quality_runtime: Literal["torchscript", "onnx"] = Field(
        default="torchscript",
        description="What scores in process: the TorchScript model, or its ONNX export through "
        "ONNX Runtime (TensorRT or CUDA on a Jetson when its build has them; checked at start "
        "to score as the verified TorchScript model does).",
    )
    release_public_key: str | None = Field(
        default=None,
        pattern=RELEASE_PUBLIC_KEY_PATTERN,
        description="The fleet's public release key (O..., `skyfleet fleet credentials`): "
        "only models signed with it are loaded. None: the sha256 check only.",
    )
    model_dir: Path = SHIPPED_QUALITY_MODEL_DIR
    heartbeat_interval_s: float = Field(default=10.0, gt=0.0)
    pixel_scale_arcsec: float | None = Field(default=None, gt=0.0)
    saturation_adu: float | None = Field(default=None, gt=0.0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no /metrics endpoint.")
    metrics_host: str = Field(default="127.0.0.1", description="Address /metrics listens on.")
    hub_js_domain: str | None = Field(
        default="hub",
        description="JetStream domain of the hub (commands, link probe); None: the agent's "
        "server is the central one (single-server development).",
    )
    nats_port: int = Field(
        default=0, ge=0, le=65535, description="Embedded site server's client port (0: free)."
    )
    nats_monitor_port: int = Field(
        default=0, ge=0, le=65535, description="Embedded site server's HTTP port (0: free)."
    )
    settle_s: float = Field(
        default=1.0, ge=0.0, description="Unchanged this long: complete (a rename: at once)."
    )
    incomplete_timeout_s: float = Field(
        default=INCOMPLETE_TIMEOUT_S,
        gt=0.0,
        description="A file whose FITS headers promise more bytes than it holds is waited for "
        "until it has been unchanged this long, then rejected as truncated.",
    )
    polling: bool = Field(
        default=False, description="Poll the folder instead of inotify (network shares)."
    )
    queue_size: int = Field(
        default=16, ge=1, le=10_000, description="Complete frames queued for scoring at most."
    )
    publish_timeout_s: float = Field(default=5.0, gt=0.0)
    min_free_disk_mb: float = Field(
        default=100.0,
        ge=1.0,
        description="Free space the site's store needs on the work folder's disk. Below it the "
        "agent says the disk is full and frames wait in the folder; once there is this much "
        "again, a site nats-server whose store failed is restarted.",
    )
    search_transients: bool = Field(
        default=True, description="Difference imaging against the site's references."
    )
    search_backlog: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Scored frames that may wait for their transient search (on disk); beyond "
        "it the oldest are reported not searched. 500 frames are ~30 min of searching at the "
        "measured 3-4 s a 4096² frame: a burst or a restart's backlog is searched, not skipped.",
    )
    realbogus_model_dir: Path = SHIPPED_REALBOGUS_MODEL_DIR
    transients: TransientSearchSettings = Field(
        default_factory=TransientSearchSettings,
        description="Limits of the transient search ([site.transients]: real_bogus_threshold, "
        "detection_sigma, max_published, ...; docs/transients.md).",
    )
    photometry_file: Path | None = Field(
        default=None,
        description="The camera's photometric calibration (JSON or TOML, see "
        "imaging.photometry): with it, frames get transparency and sky brightness.",
    )
    calibrate_frames: bool = Field(
        default=True,
        description="Apply the site's master bias, dark and flat to sky frames before scoring "
        "(bias, dark and flat frames are collected into masters either way; docs/site-agent.md).",
    )
    calibration_min_frames: int = Field(
        default=MIN_FRAMES_PER_MASTER,
        ge=3,
        le=MAX_FRAMES_PER_MASTER,
        description="Calibration frames of one kind (and exposure time or filter) that make a "
        "master; the master is built again whenever as many more have arrived.",
    )
    location: SiteLocation | None = Field(
        default=None, description="Where the telescope is; with `camera`, sent as SiteConfig."
    )
    camera: CameraConfig | None = None
    samples: SampleSettings = Field(
        default_factory=SampleSettings,
        description="Frames kept for retraining ([site.samples]: quota_bytes, min_interval_s).",
    )
    rollout: RolloutSettings = Field(
        default_factory=RolloutSettings,
        description="When a released model counts as drifted and is rolled back ([site.rollout]).",
    )
    horizon_limit_deg: float = Field(default=20.0, ge=0.0, le=80.0)
    alpaca: AlpacaDevices | None = Field(
        default=None,
        description="The telescope's ASCOM Alpaca devices: with them the agent carries out "
        "follow-ups itself and reads its weather; None: follow-ups are handed to the "
        "observatory's scheduler as JSON files (docs/followups.md).",
    )

    @model_validator(mode="after")
    def _alpaca_needs_the_site(self) -> Self:
        """The Alpaca executor judges the sky from the site and writes WCS with its scale."""
        if self.alpaca is not None and (
            self.location is None or (self.pixel_scale_arcsec is None and self.camera is None)
        ):
            raise ValueError("alpaca devices need location and pixel_scale_arcsec (or camera)")
        return self

    @model_validator(mode="after")
    def _triton_repository_needs_triton(self) -> Self:
        """The repository is the one the site's Triton serves: without Triton it is unused."""
        if self.triton_repository is not None and self.triton_url is None:
            raise ValueError("triton_repository is the repository of triton_url: set both")
        return self

    @property
    def quarantine_dir(self) -> Path:
        return self.work_dir / "quarantine"

    @property
    def state_path(self) -> Path:
        return self.work_dir / "processed.sqlite3"

    @property
    def followup_dir(self) -> Path:
        """Accepted follow-up requests for the telescope's scheduler (`site_agent.followups`)."""
        return self.work_dir / "followups"

    @property
    def followup_records_dir(self) -> Path:
        """Follow-ups the agent carries out itself, one record each (`site_agent.executor`)."""
        return self.work_dir / "followup-records"

    @property
    def calibration_dir(self) -> Path:
        """Calibration frames and their masters (`imaging.calibration_store`)."""
        return self.work_dir / "calibration"

    @property
    def reference_dir(self) -> Path:
        return self.work_dir / "references"

    @property
    def field_references_dir(self) -> Path:
        """The site's star lists of its fields, for transparency without a catalogue
        (`imaging.field_reference`)."""
        return self.work_dir / "field-references"

    @property
    def search_backlog_path(self) -> Path:
        return self.work_dir / "search-backlog.sqlite3"

    @property
    def nats_store_dir(self) -> Path:
        return self.work_dir / "nats"

"""Settings of the site agent (`SKYFLEET_SITE_*`, flags, `[site]` in a TOML file)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fleetbus.settings import ServiceSettings
from protos.base import SITE_ID_PATTERN

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "quality"


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
    triton_url: str | None = Field(default=None, description="Triton gRPC address, host:port.")
    model_dir: Path = DEFAULT_MODEL_DIR
    heartbeat_interval_s: float = Field(default=10.0, gt=0.0)
    pixel_scale_arcsec: float | None = Field(default=None, gt=0.0)
    saturation_adu: float | None = Field(default=None, gt=0.0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no /metrics endpoint.")

"""Settings of the coordinator (`SKYFLEET_COORDINATOR_*`, flags, `[coordinator]` in TOML).

The database URL is also read from `SKYFLEET_DATABASE_URL`, the name every tool shares.
"""

from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from fleetbus.settings import ServiceSettings


class CoordinatorSettings(ServiceSettings):
    """How the coordinator runs. Defaults: embedded NATS is not assumed; SQLite in ./var."""

    model_config = SettingsConfigDict(
        env_prefix="SKYFLEET_COORDINATOR_", extra="forbid", populate_by_name=True
    )
    toml_table: ClassVar[str] = "coordinator"

    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = Field(
        default="sqlite:///var/coordinator.sqlite3",
        validation_alias=AliasChoices(
            "database_url", "SKYFLEET_DATABASE_URL", "SKYFLEET_COORDINATOR_DATABASE_URL"
        ),
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    action_token: str | None = Field(
        default=None, description="Token for console actions; None disables them."
    )
    heartbeat_stale_s: float = Field(default=60.0, gt=0.0)

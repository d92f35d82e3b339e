"""Settings of the coordinator (`SKYFLEET_COORDINATOR_*`, flags, `[coordinator]` in TOML).

The database URL is also read from `SKYFLEET_DATABASE_URL`, the name every tool shares.
"""

from pathlib import Path
from typing import Annotated, ClassVar, Self

from pydantic import AliasChoices, Field, IPvAnyNetwork, model_validator
from pydantic_settings import SettingsConfigDict

from coordinator.store.roles import Role
from fleetbus.settings import ServiceSettings
from protos.base import SITE_ID_PATTERN


class CoordinatorSettings(ServiceSettings):
    """How the coordinator runs. Defaults: embedded NATS is not assumed; SQLite in ./var."""

    model_config = SettingsConfigDict(
        env_prefix="SKYFLEET_COORDINATOR_", extra="forbid", populate_by_name=True
    )
    toml_table: ClassVar[str] = "coordinator"

    nats_url: str = "nats://127.0.0.1:4222"
    nkey_file: Path | None = Field(
        default=None,
        description="The coordinator's seed file (coordinator.nk of `skyfleet fleet "
        "credentials`) where the hub lets in only the fleet's identities.",
    )
    tls_ca_file: Path | None = Field(
        default=None, description="The CA of a hub that speaks TLS (its certificate is checked)."
    )
    database_url: str = Field(
        default="sqlite:///var/coordinator.sqlite3",
        validation_alias=AliasChoices(
            "database_url", "SKYFLEET_DATABASE_URL", "SKYFLEET_COORDINATOR_DATABASE_URL"
        ),
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    serve_console: bool = Field(default=True, description="Serve the ops console over HTTP.")
    console_https: bool = Field(
        default=False,
        description="The console is served over https (by a TLS-terminating proxy): its session "
        "cookie is marked Secure, so a browser never sends it over plain http.",
    )
    console_session_hours: float = Field(
        default=12.0, gt=0.0, le=24.0 * 30, description="How long a console login lasts."
    )
    loopback_reads: bool = Field(
        default=True,
        description="Clients on this machine may read the console without logging in (a laptop). "
        "Turn it off where a proxy on the same host or pod (a sidecar) forwards other people's "
        "requests: they all come from loopback.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Addresses of authenticating reverse proxies (e.g. oauth2-proxy) whose user "
        "header is believed; from any other address the header is ignored. "
        "E.g. SKYFLEET_COORDINATOR_TRUSTED_PROXIES='[\"127.0.0.1/32\"]'.",
    )
    proxy_user_header: str = Field(
        default="X-Forwarded-User",
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="The header in which a trusted proxy names the user (oauth2-proxy's).",
    )
    proxy_default_role: Role = Field(
        default=Role.VIEWER, description="The role of a proxy's user who is not a console user."
    )
    proxy_unknown_users: bool = Field(
        default=True,
        description="Let in a proxy's users who are not console users (with proxy_default_role); "
        "off: only console users, with their own roles.",
    )
    heartbeat_stale_s: float = Field(default=60.0, gt=0.0)
    ensure_streams: bool = Field(
        default=True,
        description="Create or update the central streams at start, never dropping a site "
        "source (fleetbus.hub.ensure_hub_streams).",
    )
    sites: list[Annotated[str, Field(pattern=SITE_ID_PATTERN)]] = Field(
        default_factory=list,
        description="Sites whose streams the hub's FLEET sources (store and forward through leaf "
        'nodes), joined at every start; e.g. SKYFLEET_COORDINATOR_SITES=\'["teide","la-silla"]\'. '
        "More join at run time with `skyfleet site join`.",
    )
    keep_sources_flowing: bool = Field(
        default=True,
        description="Re-add stalled site sources on the hub every second, so ingest resumes within "
        "about a second of a link or hub coming back (fleetbus.hub.keep_sources_flowing).",
    )
    consumer_prefix: str = Field(
        default="coordinator", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Durable names."
    )
    ingest_batch: int = Field(default=1000, ge=1, le=10_000)
    ingest_idle_wait_s: float = Field(default=0.2, gt=0.0, le=30.0)
    ingest_ack_wait_s: float = Field(
        default=5.0,
        gt=0.0,
        description="Unacknowledged messages are redelivered after this: what a coordinator "
        "killed mid-batch costs before its successor stores that batch. A batch of 1,000 is "
        "stored in well under a second; one slower than this is stored again, harmlessly "
        "(messages are keyed by their ids).",
    )
    ingest_site_rate_per_s: float = Field(
        default=2000.0,
        gt=0.0,
        le=1_000_000.0,
        description="The most messages of one kind from one site stored per second; a site "
        "over it waits on the hub (nothing lost) while the others go on (coordinator.site_lanes). "
        "A site at a few frames a second sends a few messages a second of each kind, and "
        "catches up a day's backlog at this rate in minutes.",
    )
    ingest_site_burst: int = Field(
        default=4000,
        ge=1,
        description="How many messages of one kind a site may have stored at once above its "
        "rate (a short outage's backlog goes through unlimited).",
    )
    weather_window_frames: int = Field(
        default=10, ge=1, description="Recent frames of a site judged for weather."
    )
    weather_bad_fraction: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Bad fraction of recent frames that means weather."
    )
    match_radius_arcsec: float = Field(default=2.0, gt=0.0, le=60.0)
    moving_link_radius_arcsec: float = Field(
        default=1800.0, gt=0.0, description="How far a moving object may go between detections."
    )
    followup_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    followup_window_h: float = Field(default=24.0, gt=0.0, description="Deadline after planning.")
    followup_ack_timeout_s: float = Field(
        default=300.0, gt=0.0, description="A site that does not accept in time is re-planned."
    )
    min_moon_separation_deg: float = Field(default=30.0, ge=0.0, le=180.0)
    max_airmass: float = Field(default=2.0, ge=1.0)
    max_site_queue: int = Field(default=20, ge=1)
    plan_interval_s: float = Field(default=5.0, gt=0.0)
    sky_clock_offsets_s: dict[str, float] = Field(
        default_factory=dict,
        description="Simulations only: per site, how many seconds from now its sky is judged "
        "(the demo puts each simulated site in a night of its own, and its telescope judges "
        "the sky at the same offset); real sites are never offset.",
    )
    quality_frames: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="A site's latest scored frames whose seeing, transparency and bad fraction "
        "estimate its expected quality for scheduling.",
    )
    quality_persistence_h: float = Field(
        default=2.0,
        gt=0.0,
        le=48.0,
        description="Hours ahead over which a site's measured quality and conditions count half "
        "(further ahead they fade to a typical night).",
    )

    @model_validator(mode="after")
    def _rate_wait_within_ack_wait(self) -> Self:
        """A lane over its rate may hold a batch of delivered messages while it waits for tokens
        for them; they must not come again meanwhile."""
        wait_s = min(self.ingest_batch, self.ingest_site_burst) / self.ingest_site_rate_per_s
        if wait_s >= self.ingest_ack_wait_s:
            raise ValueError(
                f"min(ingest_batch, ingest_site_burst) / ingest_site_rate_per_s ({wait_s:g} s) "
                f"must be below ingest_ack_wait_s ({self.ingest_ack_wait_s:g} s)"
            )
        return self

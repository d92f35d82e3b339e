"""JetStream stream definitions: names, subjects, retention, age, duplicate window, storage.

These are plain contract objects; the bus code (`fleetbus`) turns them into nats-py configs.
Two topologies use the same definitions:
- development: one server holds `FLEET` with the site subjects directly;
- production: each site's leaf server holds its own `SITE_<ID>` stream in its own JetStream
  domain, and the hub's `FLEET` stream *sources* every site stream (store and forward).
"""

from enum import StrEnum

from pydantic import Field

from protos import subjects
from protos.base import ContractModel

DAY_S = 86_400.0


class Retention(StrEnum):
    LIMITS = "limits"
    INTEREST = "interest"
    WORK_QUEUE = "workqueue"


class Storage(StrEnum):
    FILE = "file"
    MEMORY = "memory"


class StreamSource(ContractModel):
    """Another stream this one copies from, possibly in another JetStream domain."""

    name: str
    api_prefix: str | None = Field(default=None, description="e.g. $JS.site-a.API for a leaf.")
    filter_subject: str | None = None


class StreamSpec(ContractModel):
    """One JetStream stream."""

    name: str = Field(pattern=r"^[A-Z0-9_-]{1,64}$")
    description: str
    subjects: list[str]
    retention: Retention = Retention.LIMITS
    storage: Storage = Storage.FILE
    max_age_s: float = Field(gt=0.0)
    duplicate_window_s: float = Field(gt=0.0)
    max_bytes: int = Field(default=-1, description="-1: unlimited.")
    first_seq: int | None = Field(
        default=None, ge=1, description="The first message's sequence number (None: 1)."
    )
    sources: list[StreamSource] = Field(default_factory=list)


FLEET_STREAM = "FLEET"
COMMAND_STREAM = "FLEET_COMMANDS"
DEAD_LETTER_STREAM = "FLEET_DEADLETTER"


SITE_STREAM_MAX_BYTES = 2 * 1024**3
"""What a site keeps of its own messages at most: days of an outage at a busy site."""


HUB_JS_DOMAIN = "hub"
"""The hub's JetStream domain: sites reach the hub's streams as `$JS.hub.API.>`."""


def site_command_consumer(site_id: str) -> str:
    """The durable consumer on the hub's command stream through which a site reads its commands."""
    return f"site-{site_id}-commands"


def site_domain(site_id: str) -> str:
    """The JetStream domain of a site's own (leaf) server."""
    return f"site-{site_id}"


def site_sample_bucket(site_id: str) -> str:
    """The JetStream Object Store bucket on a site's own server (its domain) holding the site's
    samples for retraining (`site_agent.samples`; read by `training.fleet_samples`)."""
    return f"samples-{site_id}"


def site_stream_name(site_id: str) -> str:
    """Name of the stream a site's leaf server keeps its own messages in."""
    return "SITE_" + site_id.upper().replace("-", "_")


def site_stream(site_id: str, *, first_seq: int | None = None) -> StreamSpec:
    """The stream on a site's own server: everything the site publishes, kept through outages.

    A site creating its stream anew (a wiped or replaced disk) gives a `first_seq` above every
    sequence an earlier stream of the site used (`fresh_first_seq`): the hub's source resumes
    after the last sequence it copied, so a stream starting again at 1 would never be copied."""
    return StreamSpec(
        first_seq=first_seq,
        name=site_stream_name(site_id),
        description=f"Messages of site {site_id}, kept at the site until the hub has them.",
        subjects=[subjects.site_events(site_id)],
        max_age_s=14 * DAY_S,
        duplicate_window_s=1 * DAY_S,
        max_bytes=SITE_STREAM_MAX_BYTES,
    )


def fresh_first_seq(now_s: float) -> int:
    """The first sequence of a site stream created at `now_s` (Unix time): the time in
    milliseconds, above every sequence of an earlier stream of the site as long as that one
    stored fewer than 1,000 messages a second on average (a site stores a few a minute)."""
    return int(now_s * 1000)


def fleet_stream(source_sites: list[str] | None = None) -> StreamSpec:
    """The central stream of all site messages.

    Without `source_sites` it captures the site subjects directly (one server); with them it
    sources each site's stream from the site's JetStream domain (leaf nodes).
    """
    if source_sites is None:
        return StreamSpec(
            name=FLEET_STREAM,
            description="All site messages (single-server topology).",
            subjects=[subjects.all_site_events()],
            max_age_s=30 * DAY_S,
            duplicate_window_s=1 * DAY_S,
        )
    return StreamSpec(
        name=FLEET_STREAM,
        description="All site messages, sourced from each site's leaf server.",
        subjects=[],
        max_age_s=30 * DAY_S,
        duplicate_window_s=1 * DAY_S,
        sources=[
            StreamSource(name=site_stream_name(s), api_prefix=f"$JS.{site_domain(s)}.API")
            for s in source_sites
        ],
    )


def command_stream() -> StreamSpec:
    """Commands to sites (follow-up requests, model releases), kept until they expire."""
    return StreamSpec(
        name=COMMAND_STREAM,
        description="Commands from the coordinator to the sites.",
        subjects=[subjects.all_commands()],
        max_age_s=7 * DAY_S,
        duplicate_window_s=1 * DAY_S,
    )


def dead_letter_stream() -> StreamSpec:
    """Messages a consumer refused, with the reason in the headers."""
    return StreamSpec(
        name=DEAD_LETTER_STREAM,
        description="Messages that failed validation, with the error.",
        subjects=[subjects.all_dead_letters()],
        max_age_s=30 * DAY_S,
        duplicate_window_s=1 * DAY_S,
    )


def central_streams(source_sites: list[str] | None = None) -> list[StreamSpec]:
    """Every stream the central server holds."""
    return [fleet_stream(source_sites), command_stream(), dead_letter_stream()]

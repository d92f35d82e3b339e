"""The hub side of store and forward: the central server that site leaf nodes join, and the
sourcing of every site's stream into `FLEET`.

Each site runs its own nats-server with JetStream in its own domain (`site-<id>`, see
`site_agent.site_nats`) as a leaf node of the hub. The hub runs in its own domain (`hub`) so that
sites can reach its command stream through the leaf link, and its `FLEET` stream *sources* every
site stream through the site's domain (`$JS.site-<id>.API`), so what a site stored during an
outage flows to the centre, once, when the link returns. In this topology `FLEET` has no
subjects of its own: if it also captured `fleet.site.*.>` it would store each message twice.

After an outage nats-server retries a broken source with a growing back-off (10 s, 20 s, ...
up to 2 min), so the hub would catch up long after the link is back. `keep_sources_flowing`
runs at the hub and re-adds stalled sources every few seconds; a re-added source resumes after
the last message the hub holds from it (measured: caught up 0.3 s after the link returned,
each message once).
"""

import asyncio
import dataclasses
import logging
from pathlib import Path

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fleetbus.server import NatsServerConfig, free_port
from fleetbus.streams import ensure_streams
from protos.streams import (
    FLEET_STREAM,
    StreamSource,
    command_stream,
    dead_letter_stream,
    fleet_stream,
)

log = logging.getLogger(__name__)

HUB_JS_DOMAIN = "hub"
DEFAULT_LEAF_PORT = 7422


def hub_server_config(
    store_dir: Path,
    *,
    server_name: str = "hub",
    host: str = "127.0.0.1",
    port: int = 0,
    monitor_port: int = 0,
    leaf_port: int = 0,
) -> NatsServerConfig:
    """The central server: JetStream in the `hub` domain, listening for site leaf nodes."""
    return NatsServerConfig(
        server_name=server_name,
        host=host,
        port=port or free_port(host),
        monitor_port=monitor_port or free_port(host),
        store_dir=store_dir,
        jetstream_domain=HUB_JS_DOMAIN,
        leaf_listen_port=leaf_port or free_port(host),
    )


async def join_sites_to_hub(js: JetStreamContext, site_ids: list[str]) -> list[str]:
    """Make the hub's `FLEET` stream source these sites (keeping the sites it already sources)
    and create the other central streams. Returns the names of the sourced site streams.

    Call it when a site joins: the stream is updated in place, never re-created.
    """
    wanted = fleet_stream(sorted(set(site_ids)))
    try:
        existing = (await js.stream_info(FLEET_STREAM)).config.sources or []
    except NotFoundError:
        existing = []
    names = {source.name for source in wanted.sources}
    kept = [
        StreamSource(
            name=source.name,
            api_prefix=source.external.api if source.external else None,
            filter_subject=source.filter_subject,
        )
        for source in existing
        if source.name not in names
    ]
    spec = wanted.model_copy(update={"sources": [*kept, *wanted.sources]})
    await ensure_streams(js, [spec, command_stream(), dead_letter_stream()])
    return [source.name for source in spec.sources]


async def revive_stalled_sources(js: JetStreamContext, *, stale_after_s: float = 10.0) -> list[str]:
    """Re-add the hub's `FLEET` sources that have been silent for `stale_after_s` (a healthy
    source hears heartbeats every second or so). Returns the names re-added."""
    info = await js.stream_info(FLEET_STREAM)
    stalled = [
        source.name
        for source in info.sources or []
        if source.active is None or source.active < 0 or source.active / 1e9 > stale_after_s
    ]
    if stalled:
        config = info.config
        kept = [source for source in config.sources or [] if source.name not in stalled]
        await js.update_stream(dataclasses.replace(config, sources=kept or None))
        await js.update_stream(config)
    return stalled


async def keep_sources_flowing(
    js: JetStreamContext, *, every_s: float = 5.0, stale_after_s: float = 10.0
) -> None:
    """Run at the hub: revive stalled site sources every `every_s` until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        try:
            revived = await revive_stalled_sources(js, stale_after_s=stale_after_s)
        except (TimeoutError, NatsError) as exc:
            log.warning("cannot check FLEET sources error=%r", exc)
            continue
        if revived:
            log.info("re-added stalled sources streams=%s", ",".join(revived))

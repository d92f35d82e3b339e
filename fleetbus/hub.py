"""The hub side of store and forward: the central server that site leaf nodes join, and the
sourcing of every site's stream into `FLEET`.

Each site runs its own nats-server with JetStream in its own domain (`site-<id>`, see
`site_agent.site_nats`) as a leaf node of the hub. The hub runs in its own domain (`hub`) so that
sites can reach its command stream through the leaf link, and its `FLEET` stream *sources* every
site stream through the site's domain (`$JS.site-<id>.API`), so what a site stored during an
outage flows to the centre, once, when the link returns. In this topology `FLEET` has no
subjects of its own: if it also captured `fleet.site.*.>` it would store each message twice.

After an outage nats-server retries a broken source with a growing back-off (10 s, 20 s, ...
up to 2 min), so the hub would catch up long after the link is back (measured: ingest stalled
30-40 s after each hub restart). `keep_sources_flowing` re-adds stalled sources; a re-added
source resumes after the last message the hub holds from it (measured: caught up 0.3 s after
the link returned, each message once). The coordinator runs it for as long as it runs (and
`skyfleet nats up` for its own hub), so a shipped fleet heals without an operator.
"""

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from fleetbus.server import NatsServerConfig, TlsFiles, free_port
from fleetbus.streams import ensure_streams
from protos.base import SITE_ID_PATTERN
from protos.streams import (
    FLEET_STREAM,
    HUB_JS_DOMAIN,
    StreamSource,
    command_stream,
    dead_letter_stream,
    fleet_stream,
)

log = logging.getLogger(__name__)

DEFAULT_LEAF_PORT = 7422
SOURCE_CHECK_EVERY_S = 1.0
"""How often the hub's sources are checked: a stalled source flows again about this long after
the link returns. One `stream_info` a second costs the hub nothing measurable."""
SOURCE_STALE_AFTER_S = 5.0
"""A source silent this long is stalled. A healthy one, even with nothing to send, hears from its
site every 0.85 s (measured `active` of an idle source over 20 s)."""
SOURCE_REVIVE_GRACE_S = 5.0
"""A re-added source is left alone this long (see `SourceKeeper`): nats-server took 2-3 s after a
re-add to reset the source of a re-created site stream."""
ORIGIN_PROBE_TIMEOUT_S = 1.0
"""How long the keeper waits for a site's stream to answer through the leaf link (a site that is
reachable answers in milliseconds)."""


def hub_server_config(
    store_dir: Path,
    *,
    server_name: str = "hub",
    host: str = "127.0.0.1",
    port: int = 0,
    monitor_port: int = 0,
    leaf_port: int = 0,
    authorization_file: Path | None = None,
    tls: TlsFiles | None = None,
) -> NatsServerConfig:
    """The central server: JetStream in the `hub` domain, listening for site leaf nodes; with
    `authorization_file` (`skyfleet fleet credentials`) only the fleet's identities get in."""
    return NatsServerConfig(
        server_name=server_name,
        host=host,
        port=port or free_port(host),
        monitor_port=monitor_port or free_port(host),
        store_dir=store_dir,
        jetstream_domain=HUB_JS_DOMAIN,
        leaf_listen_port=leaf_port or free_port(host),
        authorization_file=authorization_file,
        tls=tls,
    )


async def ensure_hub_streams(js: JetStreamContext, site_ids: Iterable[str] = ()) -> list[str]:
    """Create the central streams, or bring them up to date, without ever dropping a source:
    `FLEET` keeps the topology it has (sourcing site streams, or capturing the site subjects on
    a single server) and sources `site_ids` in addition. Returns the sourced stream names.

    This is the one place the hub's streams are made: the coordinator calls it at every start
    (with its configured sites), `skyfleet site join` when a site joins, `skyfleet nats up` when
    it starts a hub. A stream is updated in place, never re-created (nats-server #6206), and
    `FLEET` is not touched at all when it already sources every site asked for.
    """
    joining = sorted(set(site_ids))
    for site_id in joining:
        if not re.fullmatch(SITE_ID_PATTERN, site_id):
            raise ValueError(f"not a site id: {site_id!r} (lower-case letters, digits and '-')")
    try:
        existing = (await js.stream_info(FLEET_STREAM)).config.sources or []
    except NotFoundError:
        existing = None
    kept = [
        StreamSource(
            name=source.name,
            api_prefix=source.external.api if source.external else None,
            filter_subject=source.filter_subject,
        )
        for source in existing or []
    ]
    known = {source.name for source in kept}
    added = [s for s in fleet_stream(joining).sources if s.name not in known]
    specs = [command_stream(), dead_letter_stream()]
    if existing is None or added:
        sourced = [*kept, *added]
        fleet = fleet_stream(joining).model_copy(update={"sources": sourced})
        specs.insert(0, fleet if sourced else fleet_stream())
    await ensure_streams(js, specs)
    return [source.name for source in [*kept, *added]]


class SourceKeeper:
    """Re-adds the hub's `FLEET` sources that have stalled, so a site's backlog flows as soon as
    the site can be reached again, not after nats-server's own retry back-off.

    A source is re-added when it has been silent for `stale_after_s` *and* its site's stream
    answers through the leaf link (re-adding a source whose site is unreachable does nothing),
    and never twice within `grace_s`: nats-server needs a few seconds after a re-add to notice a
    site stream that was created anew (a wiped or replaced disk: "source stream ... was
    recreated, resetting source state"), and re-adding it every second kept it from ever doing
    so (measured: a re-created site stream was never copied again; with the grace, 3 s after the
    re-add). Returns from `check` the names re-added."""

    def __init__(
        self,
        nc: Client,
        *,
        stale_after_s: float = SOURCE_STALE_AFTER_S,
        grace_s: float = SOURCE_REVIVE_GRACE_S,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stale_after_s = stale_after_s
        self.grace_s = grace_s
        self._revived_at: dict[str, float] = {}

    async def check(self) -> list[str]:
        """Re-add the stalled sources whose sites answer (see the class)."""
        info = await self._js.stream_info(FLEET_STREAM)
        now = time.monotonic()
        stalled = [
            source
            for source in info.sources or []
            if _silent_for(source) > self.stale_after_s
            and now - self._revived_at.get(source.name, -self.grace_s) >= self.grace_s
        ]
        prefixes = {
            source.name: source.external.api if source.external else None
            for source in info.config.sources or []
        }
        reachable = [
            source.name
            for source in stalled
            if await self._origin_answers(source.name, prefixes.get(source.name))
        ]
        if reachable:
            config = info.config
            kept = [source for source in config.sources or [] if source.name not in reachable]
            await self._js.update_stream(dataclasses.replace(config, sources=kept or None))
            await self._js.update_stream(config)
            self._revived_at.update(dict.fromkeys(reachable, now))
        return reachable

    async def _origin_answers(self, stream: str, api_prefix: str | None) -> bool:
        """Whether the sourced stream answers from its site (through the leaf link, at its
        JetStream API prefix; None: this server's own)."""
        origin = self._nc.jetstream(
            **({"prefix": api_prefix} if api_prefix else {}), timeout=ORIGIN_PROBE_TIMEOUT_S
        )
        try:
            await origin.stream_info(stream)
        except (TimeoutError, NatsError):
            return False
        return True

    async def run(self, every_s: float = SOURCE_CHECK_EVERY_S) -> None:
        """Check every `every_s` until cancelled (the hub may be down meanwhile: the check
        waits for it)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                revived = await self.check()
            except (TimeoutError, NatsError) as exc:
                log.warning("cannot check FLEET sources error=%r", exc)
                continue
            if revived:
                log.info("re-added stalled sources streams=%s", ",".join(revived))


def _silent_for(source: js_api.StreamSourceInfo) -> float:
    """Seconds since the source last heard from its site (infinite: never, or not now)."""
    if source.active is None or source.active < 0:
        return float("inf")
    return source.active / 1e9


async def keep_sources_flowing(nc: Client, *, every_s: float = SOURCE_CHECK_EVERY_S) -> None:
    """Run a `SourceKeeper` on the hub `nc` is connected to until cancelled."""
    await SourceKeeper(nc).run(every_s)

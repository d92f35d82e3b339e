"""Fair ingest: one lane (durable pull consumer) per site and kind, so that a flood from one site
never holds back the others' messages.

Why lanes and not one consumer per kind: a consumer of every site takes messages in the order
they reached the hub, so 20,000 frame scores from one site delayed every later message of every
site by the time it took to store them (measured: another site's scores waited for the whole
flood, `tests/test_ingest_fairness.py`). A token bucket in front of such a consumer cannot help:
it would have to read past the flood to reach the others, holding every deferred message
unacknowledged up to the consumer's pending limit, and then starve them again. With a lane per
site, a site's backlog waits in the hub's stream, unread, and never stands in front of another
site's messages; the lanes share the one store writer in turns (each has at most one batch being
stored and one waiting), and each lane is held to the site's rate (`site_rates`): a flooding
site gets at most its rate, the others theirs, and every message is stored exactly once (the
store ignores ids it holds; nothing is acknowledged before it is stored).

Lanes appear by themselves: each kind's loop starts a lane for each configured site
(`CoordinatorSettings.sites`) at once, lists the subjects of `FLEET` every `DISCOVERY_EVERY_S`
(one stream info request with a subject filter) and starts a lane for each other site that has
messages of its kind; a lane that ends with a fault is started again on the next
round. The dead letters of every lane of a kind go where the kind's went before
(`fleet.deadletter.<prefix>-<kind>`). A consumer of every site left by an earlier release
(`<prefix>-<kind>`) is replaced: the lanes start after the last message it had acknowledged
(all before it were stored; the few after it that it may have stored are ignored as known), and
it is deleted. Cost: an idle lane sends one pull request per `ingest_idle_wait_s`.
"""

import asyncio
import contextlib
import logging
from collections import Counter

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from coordinator.ingest import INGESTED_KINDS, BatchWrite, KindConsumer
from coordinator.settings import CoordinatorSettings
from coordinator.site_rates import SiteRates
from fleetbus.pull import ensure_consumer
from protos.streams import FLEET_STREAM
from protos.subjects import all_sites_of_kind, site_of_subject, subject_for_kind

log = logging.getLogger(__name__)

DISCOVERY_EVERY_S = 1.0
"""How often each kind's loop looks for new sites: a site's first message waits at most this
long for its lane. One stream info request a second per kind costs the hub nothing measurable."""


def lane_durable(prefix: str, kind: str, site_id: str) -> str:
    """The durable name of one site's lane of one kind."""
    return f"{prefix}-{kind}-{site_id}"


class KindLanes:
    """The lanes of one message kind, one per site that has sent messages of it."""

    def __init__(
        self,
        nc: Client,
        kind: str,
        write: BatchWrite,
        settings: CoordinatorSettings,
        counts: Counter[str],
        rates: SiteRates,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.kind = kind
        self.write = write
        self.settings = settings
        self.counts = counts
        self.rates = rates
        self.legacy = f"{settings.consumer_prefix}-{kind}"
        """The consumer of every site of this kind (an earlier release's), and the name under
        which this kind's dead letters go."""
        self._legacy_gone = False

    async def run(self, stop: asyncio.Event) -> None:
        """Start lanes as sites appear, restart those that failed, until `stop` is set."""
        lanes: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                try:
                    await self._discover(lanes, stop)
                except Exception:
                    log.exception("ingest lanes: looking for sites failed kind=%s", self.kind)
                    self.counts["ingest-errors"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), DISCOVERY_EVERY_S)
        finally:
            if not stop.is_set():  # failed: the lanes go with it, and come again with it
                for task in lanes.values():
                    task.cancel()
            await asyncio.gather(*lanes.values(), return_exceptions=True)

    async def _discover(self, lanes: dict[str, asyncio.Task[None]], stop: asyncio.Event) -> None:
        for site_id, task in list(lanes.items()):
            if task.done():
                del lanes[site_id]
                log.error(
                    "ingest lane ended kind=%s site=%s error=%r; starting it again",
                    self.kind,
                    site_id,
                    None if task.cancelled() else task.exception(),
                )
                self.counts["ingest-errors"] += 1
        sites = await self.sites_with_messages() | set(self.settings.sites)
        new = sorted(sites - lanes.keys())
        start_seq = None if self._legacy_gone else await self._legacy_start()
        for site_id in new:
            lane = self.lane(site_id, start_seq)
            await ensure_consumer(self.js, FLEET_STREAM, lane.config)
            lanes[site_id] = asyncio.create_task(
                lane.run(stop), name=f"ingest-{self.kind}-{site_id}"
            )
            log.info("ingest lane started kind=%s site=%s", self.kind, site_id)
        if start_seq is not None:  # also retried here, if a round's delete failed
            await self.js.delete_consumer(FLEET_STREAM, self.legacy)
            log.warning(
                "ingest replaced consumer %s by one lane per site, from stream sequence %d",
                self.legacy,
                start_seq,
            )
        self._legacy_gone = True

    async def sites_with_messages(self) -> set[str]:
        """The sites with messages of this kind in `FLEET` (a subject whose site token is not a
        site id has no lane: nothing valid can come on it)."""
        info = await self.js.stream_info(FLEET_STREAM, subjects_filter=all_sites_of_kind(self.kind))
        sites = set()
        for subject in info.state.subjects or {}:
            with contextlib.suppress(ValueError):
                site_id = site_of_subject(subject)
                if subject == subject_for_kind(self.kind, site_id):
                    sites.add(site_id)
        return sites

    async def _legacy_start(self) -> int | None:
        """Where lanes replacing an earlier release's consumer of every site start: after the
        last message it acknowledged; None if there is none (lanes start at the beginning)."""
        try:
            legacy = await self.js.consumer_info(FLEET_STREAM, self.legacy)
        except NotFoundError:
            return None
        floor = legacy.ack_floor.stream_seq if legacy.ack_floor else 0
        return floor + 1

    def lane(self, site_id: str, start_seq: int | None) -> KindConsumer:
        """The ingest loop of this kind for one site, held to the site's rate."""
        return KindConsumer(
            self.nc,
            self.kind,
            self.write,
            durable=lane_durable(self.settings.consumer_prefix, self.kind, site_id),
            batch=self.settings.ingest_batch,
            idle_wait_s=self.settings.ingest_idle_wait_s,
            ack_wait_s=self.settings.ingest_ack_wait_s,
            counts=self.counts,
            filter_subject=subject_for_kind(self.kind, site_id),
            start_seq=start_seq,
            dead_letter_name=self.legacy,
            rate=self.rates.lane(site_id, self.kind),
        )


def kind_lanes(
    nc: Client, write: BatchWrite, settings: CoordinatorSettings, counts: Counter[str]
) -> list[KindLanes]:
    """The lanes of each kind the coordinator stores, all held to the same per-site rate."""
    rates = SiteRates(settings.ingest_site_rate_per_s, settings.ingest_site_burst, counts)
    return [KindLanes(nc, kind, write, settings, counts, rates) for kind in INGESTED_KINDS]

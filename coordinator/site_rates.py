"""Per-site ingest rates: a token bucket for each site's lane of each kind, and the warning and
counts that say a site is being held to its rate.

A lane over its rate does not fetch: its messages wait, unacknowledged and unread, in the hub's
stream (nothing is dropped, nothing acknowledged before it is stored) and are taken at the rate
as tokens come back. Only that site's lane waits; the other sites' lanes go on (`site_lanes`).
The rate applies to each kind of a site's messages separately, so a flood of frame scores does
not hold back the same site's heartbeats.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter

from nats.aio.msg import Msg

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0
"""At most one warning per site in this long: a flood lasting hours writes one line a minute."""
MIN_SPAN_S = 1e-3
"""Arrival spans below this (a batch stored on the hub at once) count as this, so that the rate
reported is finite."""


class SiteRates:
    """The buckets of every lane, with one warning clock per site."""

    def __init__(self, rate_per_s: float, burst: int, counts: Counter[str]) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.counts = counts
        self._warned_at: dict[str, float] = {}

    def lane(self, site_id: str, kind: str) -> "LaneRate":
        """A full bucket for one site's messages of one kind."""
        return LaneRate(self, site_id, kind)

    def held_back(self, lane: "LaneRate") -> None:
        """Count a wait of `lane` and warn, at most once per site per `WARN_EVERY_S`."""
        self.counts["rate-limited"] += 1
        self.counts[f"rate-limited:{lane.site_id}"] += 1
        now = time.monotonic()
        last = self._warned_at.get(lane.site_id)
        if last is not None and now - last < WARN_EVERY_S:
            return
        self._warned_at[lane.site_id] = now
        log.warning(
            "ingest rate-limited site=%s kind=%s arriving=%.0f/s limit=%g/s burst=%d "
            "backlog=%d: the site's messages wait on the hub and are stored at the limit; "
            "other sites are not held back (ingest_site_rate_per_s, ingest_site_burst)",
            lane.site_id,
            lane.kind,
            lane.arriving_per_s,
            self.rate_per_s,
            self.burst,
            lane.backlog,
        )


class LaneRate:
    """The token bucket of one lane: `allowance` before a fetch, `spend` after it."""

    def __init__(self, rates: SiteRates, site_id: str, kind: str) -> None:
        self.rates = rates
        self.site_id = site_id
        self.kind = kind
        self.tokens = float(rates.burst)
        self.arriving_per_s = 0.0
        """How fast the last batch arrived on the hub (from its messages' stream times)."""
        self.backlog = 0
        """Messages of the lane waiting on the hub after the last batch."""
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(
            float(self.rates.burst), self.tokens + (now - self._updated) * self.rates.rate_per_s
        )
        self._updated = now

    async def allowance(self, batch: int, stop: asyncio.Event) -> int:
        """How many messages the lane may fetch now. With a backlog behind its last batch and
        fewer tokens than a batch (or the burst, if smaller), it is over its rate: it waits
        until it has that many again (counted, and warned about), or `stop` (then 0)."""
        self._refill()
        wanted = min(batch, self.rates.burst)
        if self.tokens >= wanted or (not self.backlog and self.tokens >= 1.0):
            return int(self.tokens)
        if self.backlog:
            self.rates.held_back(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), (wanted - self.tokens) / self.rates.rate_per_s)
            return 0
        self._refill()
        return int(self.tokens)

    def spend(self, fetched: list[Msg]) -> None:
        """Take a fetched batch out of the bucket, noting its arrival rate and what waits."""
        self._refill()
        self.tokens -= len(fetched)
        first, last = fetched[0].metadata, fetched[-1].metadata
        span_s = (last.timestamp - first.timestamp).total_seconds()
        self.arriving_per_s = len(fetched) / max(span_s, MIN_SPAN_S)
        self.backlog = last.num_pending

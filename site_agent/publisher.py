"""Publishing the site's messages to its local JetStream, and knowing whether the centre is
reachable.

The agent publishes to the server it is connected to: in production the site's own leaf
server, whose stream keeps every message until the hub has sourced it; in development a
single central server. `prepare()` uses whichever stream already captures the site's subjects
and creates the site stream only when none does. `send()` retries until JetStream acknowledges,
with the message's stable id as `Nats-Msg-Id`, so a retry after a timeout is stored once.
"""

import asyncio
import logging
import time

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import PubAck
from nats.js.errors import APIError, NotFoundError

from fleetbus.client import publish
from fleetbus.streams import ensure_streams
from protos import FleetMessage, LinkState
from protos.streams import fresh_first_seq, site_stream
from protos.subjects import subject_for_kind

log = logging.getLogger(__name__)


class SiteStreamError(RuntimeError):
    """The site's stream could not be created (the server refused it, and said why)."""


class SitePublisher:
    """Puts one site's messages into JetStream and probes the link to the hub."""

    def __init__(
        self,
        nc: Client,
        site_id: str,
        *,
        hub_js_domain: str | None,
        ack_timeout_s: float = 5.0,
        max_backoff_s: float = 5.0,
        probe_timeout_s: float = 2.0,
    ) -> None:
        self.site_id = site_id
        self._nc = nc
        self._js = nc.jetstream(timeout=ack_timeout_s)
        self._hub_js = (
            nc.jetstream(domain=hub_js_domain, timeout=probe_timeout_s) if hub_js_domain else None
        )
        self._ack_timeout_s = ack_timeout_s
        self._max_backoff_s = max_backoff_s
        self.link_state = LinkState.UNKNOWN

    async def prepare(self) -> str:
        """Make sure a stream stores this site's messages; returns its name."""
        try:
            name = await self._js.find_stream_name_by_subject(
                subject_for_kind("frame-score", self.site_id)
            )
        except NotFoundError:
            try:
                fresh = site_stream(self.site_id, first_seq=fresh_first_seq(time.time()))
                [name] = await ensure_streams(self._js, [fresh])
            except APIError as exc:
                raise SiteStreamError(
                    f"the site's nats-server refused the site stream: {exc.description} "
                    f"(error {exc.err_code})"
                ) from None
        log.info("publishing site=%s stream=%s", self.site_id, name)
        return name

    async def send(self, message: FleetMessage) -> PubAck:
        """Publish until JetStream acknowledges (retrying with back-off; never gives up)."""
        backoff_s = 0.1
        while True:
            try:
                ack = await publish(self._js, message, timeout_s=self._ack_timeout_s)
            except (TimeoutError, NatsError) as exc:
                log.warning(
                    "publish not acknowledged, retrying site=%s message_id=%s error=%r",
                    self.site_id,
                    message.message_id,
                    exc,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._max_backoff_s)
                continue
            log.debug(
                "published site=%s message_id=%s stream=%s seq=%s duplicate=%s",
                self.site_id,
                message.message_id,
                ack.stream,
                ack.seq,
                ack.duplicate,
            )
            return ack

    async def probe_link(self) -> LinkState:
        """Whether the hub's JetStream answers through this server (updates `link_state`).

        Without a hub domain the agent talks to the central server itself: the link is the
        connection.
        """
        if self._hub_js is None:
            state = LinkState.UP if self._nc.is_connected else LinkState.DOWN
        else:
            try:
                await self._hub_js.account_info()
                state = LinkState.UP
            except (TimeoutError, NatsError):
                state = LinkState.DOWN
        if state != self.link_state:
            log.log(
                logging.WARNING if state is LinkState.DOWN else logging.INFO,
                "link state site=%s link=%s",
                self.site_id,
                state.value,
            )
        self.link_state = state
        return state

"""Batched reads from a durable JetStream pull consumer through one callback inbox.

nats-py's `PullSubscription.fetch` waits for every message with its own task, timer and uuid,
which costs more than decoding and storing the message. `BatchPuller` sends the same pull
request (`$JS.API.CONSUMER.MSG.NEXT`) itself and collects the replies in a plain callback
subscription, so a batch costs one request and one wake-up.

A batch ends when it is full, when the server says the request is over (status 404 no messages,
408 request expired, 409 consumer changed) or, should that status be lost with the link, after
the request's expiry and a grace period. Replies to a request that outlived its batch are kept
for the next one, so nothing delivered is ever dropped, and messages keep their delivery order.
"""

import asyncio
import json
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, Header
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

END_OF_REQUEST = frozenset({"404", "408", "409"})
GRACE_S = 1.0
LINGER_S = 0.05  # how long a batch that has begun waits to fill before it is handed over
PENDING_MSGS_LIMIT = 1_000_000


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer unless it exists. One left by an older release with another
    ack policy, which the server cannot change in place, is replaced: the new one starts from
    the stream's beginning, and readers that store idempotently lose nothing by that."""
    durable = config.durable_name
    assert durable, "a batch puller reads a durable consumer"
    try:
        existing = await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(stream, config)
        return
    if existing.config.ack_policy != config.ack_policy:
        log.warning(
            "replacing consumer %s on %s: ack policy %s -> %s",
            durable,
            stream,
            existing.config.ack_policy,
            config.ack_policy,
        )
        await js.delete_consumer(stream, durable)
        await js.add_consumer(stream, config)


class BatchPuller:
    """Fetches batches of a durable pull consumer of `stream`, keeping one request for the next
    batch in flight while the caller works on the last one."""

    def __init__(self, nc: Client, stream: str, durable: str) -> None:
        self._nc = nc
        self._request_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._subscription: Subscription | None = None
        self._received: list[Msg] = []
        self._owed = 0  # messages the request in flight may still bring; 0: none in flight
        self._wanted = 0
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(
            self._inbox, cb=self._on_reply, pending_msgs_limit=PENDING_MSGS_LIMIT
        )

    async def stop(self) -> None:
        """Stop listening; messages delivered and not yet taken are redelivered after the
        consumer's ack wait."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def fetch(self, batch: int, wait_s: float, *, prefetch: bool = True) -> list[Msg]:
        """Up to `batch` messages: a full batch as soon as it is there, else what arrived
        within `LINGER_S` of the first message, else nothing after `wait_s`. With `prefetch`
        off, no request for the next batch is sent after a full one (a reader that may not
        take it soon: delivered messages wait, and come again after the ack wait)."""
        if len(self._received) < batch and not self._owed:
            await self._request(batch - len(self._received), wait_s)
        self._wanted = batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s + GRACE_S
        linger_until: float | None = None
        while len(self._received) < batch and self._owed:
            if self._received and linger_until is None:
                linger_until = loop.time() + LINGER_S
            until = deadline if linger_until is None else min(deadline, linger_until)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(until - loop.time(), 0.0))
            except TimeoutError:
                if loop.time() >= deadline:
                    log.debug("pull request on %s ended without a status", self._request_subject)
                    self._owed = 0
                break
        taken, self._received = self._received[:batch], self._received[batch:]
        if prefetch and len(taken) == batch and not self._owed:  # likely more: ask for it now
            await self._request(batch - len(self._received), wait_s)
        return taken

    async def _request(self, batch: int, wait_s: float) -> None:
        if batch <= 0:
            return
        request = {"batch": batch, "expires": int(wait_s * 1e9)}
        self._owed = batch
        await self._nc.publish(
            self._request_subject, json.dumps(request).encode(), reply=self._inbox
        )

    async def _on_reply(self, msg: Msg) -> None:
        status = msg.headers.get(Header.STATUS.value) if msg.headers else None
        if status is None:
            self._received.append(msg)
            self._owed = max(self._owed - 1, 0)
            if self._owed and 1 < len(self._received) < self._wanted:
                return
        elif status in END_OF_REQUEST:
            self._owed = 0
        else:
            return
        self._changed.set()

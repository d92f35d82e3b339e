"""Connecting to NATS and moving contract messages on JetStream.

Every publish carries the message's stable id as `Nats-Msg-Id`, so a resend after a timeout,
a crash or an outage is stored once.
"""

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from protos import FleetMessage, decode_subject_message
from protos.subjects import subject_for

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
RECONNECT_WAIT_S = 0.5
"""Between two attempts to reach a server that went away: a restarted local server is back in
well under a second, so waiting longer only delays the site."""


async def connect(url: str, *, name: str, connect_timeout_s: float = 5.0) -> Client:
    """Connect with the fleet's defaults: reconnect for ever, every error logged."""

    async def on_error(error: Exception) -> None:
        log.warning("nats error client=%s error=%r", name, error)

    async def on_disconnected() -> None:
        if not (client.is_closed or client.is_draining):
            log.warning("nats disconnected client=%s", name)

    async def on_reconnected() -> None:
        log.info("nats reconnected client=%s", name)

    client = Client()
    await client.connect(
        servers=[url],
        name=name,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        # nats-py annotates these two as int; it only waits on them, and fractions work
        connect_timeout=connect_timeout_s,  # type: ignore[arg-type]
        reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
        max_reconnect_attempts=-1,
    )
    return client


async def publish(js: JetStreamContext, message: FleetMessage, *, timeout_s: float = 5.0) -> PubAck:
    """Publish a contract message to JetStream on its subject, deduplicated by its id."""
    return await js.publish(
        subject_for(message),
        message.model_dump_json().encode(),
        timeout=timeout_s,
        headers={MSG_ID_HEADER: message.message_id},
    )


async def publish_all(
    js: JetStreamContext, messages: list[FleetMessage], *, timeout_s: float = 10.0
) -> list[PubAck]:
    """Publish many messages with several in flight; each is deduplicated by its id."""
    return await asyncio.gather(*(publish(js, m, timeout_s=timeout_s) for m in messages))


def decode(msg: Msg) -> FleetMessage:
    """Strictly decode a received message by its subject (raises MessageDecodeError)."""
    return decode_subject_message(msg.subject, msg.data)

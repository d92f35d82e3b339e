"""Connecting to NATS and moving contract messages on JetStream.

Every publish carries the message's stable id as `Nats-Msg-Id`, so a resend after a timeout,
a crash or an outage is stored once.
"""

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from protos import FleetMessage, decode_subject_message
from protos.subjects import subject_for

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
RECONNECT_WAIT_S = 0.5
"""Between two attempts to reach a server that went away: a restarted local server is back in
well under a second, so waiting longer only delays the site."""


ERROR_REPORT_FIRST_S = 1.0
ERROR_REPORT_MAX_S = 300.0
"""While a server stays unreachable, the same error is reported after 1, 2, 4 ... s, then every
5 minutes: a site without its bus for a day writes a few hundred lines, not 170,000."""
ONE_SHOT_GIVE_UP_S = 15.0
"""A one-shot command (`site join`, `status`) gives up on an unreachable server after this long."""


class BusUnreachableError(ConnectionError):
    """A server that did not answer in time, named with the last cause."""


class ErrorReports:
    """Reports a connection's errors with back-off: the first at once, a repeat of the same kind
    of error only after a doubling interval, with how many attempts failed in between."""

    def __init__(self, name: str, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.url = url
        self.last_error: Exception | None = None
        self._clock = clock
        self._kind: str | None = None
        self._due = 0.0
        self._interval_s = ERROR_REPORT_FIRST_S
        self._silenced = 0

    def error(self, error: Exception) -> None:
        self.last_error = error
        now = self._clock()
        kind = type(error).__name__
        if kind == self._kind and now < self._due:
            self._silenced += 1
            return
        if kind != self._kind:
            self._interval_s = ERROR_REPORT_FIRST_S
        log.warning(
            "nats error client=%s url=%s error=%r failed_since_last_report=%d "
            "next_report_in_s=%.0f",
            self.name,
            self.url,
            error,
            self._silenced,
            self._interval_s,
        )
        self._kind, self._silenced = kind, 0
        self._due = now + self._interval_s
        self._interval_s = min(self._interval_s * 2, ERROR_REPORT_MAX_S)

    def recovered(self) -> None:
        self._kind, self._silenced, self._interval_s = None, 0, ERROR_REPORT_FIRST_S


async def connect(
    url: str,
    *,
    name: str,
    connect_timeout_s: float = 5.0,
    nkey_seed: str | None = None,
    tls_ca_file: Path | None = None,
    give_up_after_s: float | None = None,
) -> Client:
    """Connect with the fleet's defaults: reconnect for ever, errors logged with back-off.

    `nkey_seed` is this party's identity on a hub that requires one (`fleetbus.identity`);
    `tls_ca_file` the CA of a hub that speaks TLS (its certificate is verified against it).
    `give_up_after_s` is for one-shot commands: a server that has not answered by then raises
    `BusUnreachableError` naming the address and the cause, instead of retrying for ever.
    """
    reports = ErrorReports(name, url)

    async def on_error(error: Exception) -> None:
        reports.error(error)

    async def on_disconnected() -> None:
        if not (client.is_closed or client.is_draining):
            log.warning("nats disconnected client=%s url=%s", name, url)

    async def on_reconnected() -> None:
        reports.recovered()
        log.info("nats reconnected client=%s url=%s", name, url)

    client = Client()
    connecting = client.connect(
        servers=[url],
        name=name,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        # nats-py annotates these two as int; it only waits on them, and fractions work
        connect_timeout=connect_timeout_s,  # type: ignore[arg-type]
        reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
        max_reconnect_attempts=-1,
        nkeys_seed_str=nkey_seed,
        tls=None if tls_ca_file is None else ssl.create_default_context(cafile=str(tls_ca_file)),
    )
    if give_up_after_s is None:
        await connecting
        return client
    try:
        await asyncio.wait_for(connecting, give_up_after_s)
    except (TimeoutError, OSError, NatsError) as exc:
        with contextlib.suppress(Exception):
            await client.close()
        cause = reports.last_error or exc
        raise BusUnreachableError(
            f"cannot reach NATS at {url} within {give_up_after_s:.0f} s ({cause!r})"
        ) from None
    return client


async def connect_unless_stopped(url: str, *, name: str, stop: asyncio.Event) -> Client | None:
    """`connect`, or None when `stop` is set first: a service whose bus does not answer still
    ends at once when asked to (it would otherwise wait in `connect` for ever)."""
    connecting = asyncio.create_task(connect(url, name=name))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if connecting.done():
        return connecting.result()
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await connecting
    return None


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

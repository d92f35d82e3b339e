"""Ingest: durable JetStream pull consumers that move site messages into the store.

One consumer per message kind. Each loop fetches a batch, decodes it strictly, stores the valid
messages in one transaction and only then acknowledges each message of the batch. (Not one
ack-all of its last message: after a restart the server may deliver new messages before it
redelivers the ones a dead process held, and an ack-all of the new ones would drop those.)
A message that does not validate goes to the dead-letter stream with its error and is
acknowledged with its batch, so it never blocks the rest.
Redelivered messages are harmless: the store ignores message ids it already holds.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Connection, Engine

from coordinator.fusion import fuse_new_candidates
from coordinator.settings import CoordinatorSettings
from coordinator.store import writes
from fleetbus.client import MSG_ID_HEADER, decode
from fleetbus.pull import BatchPuller, ensure_consumer
from protos import FleetMessage, MessageDecodeError
from protos.base import utc_now
from protos.streams import FLEET_STREAM
from protos.subjects import all_sites_of_kind, dead_letter

log = logging.getLogger(__name__)

INGESTED_KINDS = (
    "site-config",
    "site-heartbeat",
    "frame-score",
    "frame-rejected",
    "transient-candidate",
    "followup-status",
)
MAX_RETRY_WAIT_S = 10.0
ERROR_HEADER = "Skyfleet-Error"
SUBJECT_HEADER = "Skyfleet-Subject"

BatchWrite = Callable[[str, Sequence[FleetMessage]], Awaitable[None]]


class StoreWriter:
    """Writes one decoded batch of one kind in one transaction, on `executor` (one writer
    thread in the service; None: asyncio's default executor)."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor | None,
        *,
        match_radius_arcsec: float,
        moving_radius_arcsec: float,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.match_radius_arcsec = match_radius_arcsec
        self.moving_radius_arcsec = moving_radius_arcsec

    async def __call__(self, kind: str, messages: Sequence[FleetMessage]) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self.executor, self.write, kind, messages, utc_now()
        )

    def write(self, kind: str, messages: Sequence[FleetMessage], received_at: datetime) -> None:
        """Store a batch and everything derived from it (fused targets), all or nothing."""
        with self.engine.begin() as conn:
            self._write(conn, kind, messages, received_at)

    def _write(
        self, conn: Connection, kind: str, messages: Sequence[FleetMessage], received_at: datetime
    ) -> None:
        match kind:
            case "frame-score":
                writes.write_frame_scores(conn, messages, received_at)  # type: ignore[arg-type]
            case "frame-rejected":
                writes.write_rejections(conn, messages)  # type: ignore[arg-type]
            case "site-heartbeat":
                writes.write_heartbeats(conn, messages)  # type: ignore[arg-type]
            case "site-config":
                writes.write_site_configs(conn, messages)  # type: ignore[arg-type]
            case "followup-status":
                writes.write_followup_statuses(conn, messages)  # type: ignore[arg-type]
            case "transient-candidate":
                writes.write_candidates(conn, messages)  # type: ignore[arg-type]
                fuse_new_candidates(conn, self.match_radius_arcsec, self.moving_radius_arcsec)
            case _:
                raise ValueError(f"no store writer for message kind {kind!r}")


def consumer_config(durable: str, kind: str, batch: int, ack_wait_s: float) -> ConsumerConfig:
    """A durable pull consumer of one kind from every site; one explicit ack acknowledges a
    stored message (`AckPolicy.EXPLICIT`)."""
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=all_sites_of_kind(kind),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_ack_pending=max(4 * batch, 1000),
    )


class KindConsumer:
    """The ingest loop of one message kind."""

    def __init__(
        self,
        nc: Client,
        kind: str,
        write: BatchWrite,
        *,
        durable: str,
        batch: int,
        idle_wait_s: float,
        ack_wait_s: float,
        counts: Counter[str],
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.kind = kind
        self.write = write
        self.durable = durable
        self.batch = batch
        self.idle_wait_s = idle_wait_s
        self.ack_wait_s = ack_wait_s
        self.counts = counts

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, store and acknowledge until `stop` is set. The next batch is fetched and
        decoded while the previous one is being stored; acks stay in batch order."""
        await ensure_consumer(
            self.js,
            FLEET_STREAM,
            consumer_config(self.durable, self.kind, self.batch, self.ack_wait_s),
        )
        puller = BatchPuller(self.nc, FLEET_STREAM, self.durable)
        await puller.start()
        log.info("ingest started kind=%s durable=%s", self.kind, self.durable)
        storing: asyncio.Task[None] | None = None
        while not stop.is_set():
            try:
                fetched = await puller.fetch(self.batch, self.idle_wait_s)
            except (nats.errors.ConnectionClosedError, nats.errors.Error) as exc:
                log.warning("ingest fetch failed kind=%s error=%r", self.kind, exc)
                await asyncio.sleep(self.idle_wait_s)
                continue
            if not fetched:
                continue
            valid = await self.decode_batch(fetched)
            if storing is not None:
                await storing
            storing = asyncio.create_task(self.store_and_ack(valid, fetched, stop))
        if storing is not None:
            await storing
        await puller.stop()

    async def decode_batch(self, fetched: list[Msg]) -> list[FleetMessage]:
        """The messages that validate; the others go to the dead-letter stream."""
        valid: list[FleetMessage] = []
        for msg in fetched:
            try:
                valid.append(decode(msg))
            except MessageDecodeError as error:
                await self.dead_letter(msg, error)
        return valid

    async def store_and_ack(
        self, valid: list[FleetMessage], fetched: list[Msg], stop: asyncio.Event
    ) -> None:
        """Store a batch, then acknowledge every message in it. A failed store is retried
        until it succeeds or the consumer stops; unacknowledged messages come again."""
        backoff_s = self.idle_wait_s
        while True:
            try:
                await self.write(self.kind, valid)
                break
            except Exception:
                log.exception(
                    "ingest store failed kind=%s batch=%d; retrying", self.kind, len(valid)
                )
                if stop.is_set():
                    return
                await asyncio.sleep(backoff_s)
                backoff_s = min(2 * backoff_s, MAX_RETRY_WAIT_S)
        for msg in fetched:
            await msg.ack()
        self.counts[self.kind] += len(valid)

    async def dead_letter(self, msg: Msg, error: MessageDecodeError) -> None:
        """Keep a refused message with its error on the dead-letter stream, then drop it here."""
        sequence = msg.metadata.sequence.stream
        await self.js.publish(
            dead_letter(self.durable),
            msg.data,
            headers={
                ERROR_HEADER: str(error)[:4000],
                SUBJECT_HEADER: msg.subject,
                MSG_ID_HEADER: f"{self.durable}:{sequence}",
            },
        )
        self.counts["dead-lettered"] += 1
        log.warning(
            "ingest dead-lettered kind=%s subject=%s error=%s", self.kind, msg.subject, error
        )


def kind_consumers(
    nc: Client, write: BatchWrite, settings: CoordinatorSettings, counts: Counter[str]
) -> list[KindConsumer]:
    """One consumer for each kind the coordinator stores."""
    return [
        KindConsumer(
            nc,
            kind,
            write,
            durable=f"{settings.consumer_prefix}-{kind}",
            batch=settings.ingest_batch,
            idle_wait_s=settings.ingest_idle_wait_s,
            ack_wait_s=settings.ingest_ack_wait_s,
            counts=counts,
        )
        for kind in INGESTED_KINDS
    ]

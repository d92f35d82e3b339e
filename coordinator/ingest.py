"""Ingest: durable JetStream pull consumers that move site messages into the store.

One consumer per message kind. Each loop fetches a batch, decodes it strictly, stores the valid
messages in one transaction and only then acknowledges each message of the batch. (Not one
ack-all of its last message: after a restart the server may deliver new messages before it
redelivers the ones a dead process held, and an ack-all of the new ones would drop those.)
Redelivered messages are harmless: the store ignores message ids it already holds.

No message can stop a consumer:
- one the decoder refuses goes to the dead-letter stream with its error and is acknowledged
  with its batch;
- one the store refuses for its data (a constraint, a value out of range) is found by storing
  the batch in halves, dead-lettered with the database's error, and the rest of the batch is
  stored; a failure that is not about the data (the database unreachable, locked, timing out)
  is retried with back-off and nothing is acknowledged;
- a dead letter (`coordinator.dead_letters`) fits under the max payload by construction: a
  message too big to copy is kept by reference (its stream and sequence) with a prefix of it;
- a refused message whose dead letter cannot be published (the stream missing, the link down)
  is held back: not acknowledged, it comes again after the ack wait, and the rest of its batch
  is stored and acknowledged meanwhile;
- any other fault in one round of the loop is logged, counted (`ingest-errors`) and the loop
  goes on; what was not acknowledged comes again after the ack wait.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import TypeVar, cast

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import Connection, Engine

from coordinator.dead_letters import (
    LOGGED_ERROR_MAX_CHARS,
    PAYLOAD_HEADER,
    SEQUENCE_HEADER,
    dead_letter_envelope,
    error_text,
    refused_for_its_data,
)
from coordinator.fusion import fuse_new_candidates
from coordinator.ingest_batches import Batch, Decoded, consumer_config, keep_in_progress
from coordinator.site_rates import LaneRate
from coordinator.store import writes
from fleetbus.client import decode
from fleetbus.pull import BatchPuller, ensure_consumer
from protos import (
    FleetMessage,
    FollowUpStatus,
    FrameRejected,
    FrameScore,
    FrameSearched,
    MessageDecodeError,
    SiteConfig,
    SiteHeartbeat,
    TransientCandidate,
)
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
    "frame-searched",
    "followup-status",
)
MAX_RETRY_WAIT_S = 10.0
ERROR_PAUSE_S = 1.0
"""Pause after an unexpected fault in one round of a loop, so a fault that repeats (a broken
connection, a missing stream) is logged once a second rather than spun on."""

BatchWrite = Callable[[str, Sequence[FleetMessage]], Awaitable[None]]
M = TypeVar("M", bound=FleetMessage)


def _messages_of(model: type[M], messages: Sequence[FleetMessage]) -> Sequence[M]:
    """The batch as the model its kind decodes to (a consumer's batch holds one kind)."""
    for message in messages:
        if not isinstance(message, model):
            raise TypeError(f"a {model.KIND} batch holds a {type(message).__name__}")
    return cast(Sequence[M], messages)


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
            case FrameScore.KIND:
                writes.write_frame_scores(conn, _messages_of(FrameScore, messages), received_at)
            case FrameRejected.KIND:
                writes.write_rejections(conn, _messages_of(FrameRejected, messages))
            case SiteHeartbeat.KIND:
                writes.write_heartbeats(conn, _messages_of(SiteHeartbeat, messages))
            case SiteConfig.KIND:
                writes.write_site_configs(conn, _messages_of(SiteConfig, messages))
            case FollowUpStatus.KIND:
                writes.write_followup_statuses(conn, _messages_of(FollowUpStatus, messages))
            case FrameSearched.KIND:
                writes.write_frame_searches(conn, _messages_of(FrameSearched, messages))
            case TransientCandidate.KIND:
                writes.write_candidates(conn, _messages_of(TransientCandidate, messages))
                fuse_new_candidates(conn, self.match_radius_arcsec, self.moving_radius_arcsec)
            case _:
                raise ValueError(f"no store writer for message kind {kind!r}")


class KindConsumer:
    """The ingest loop of one message kind: of every site, or of one site (`filter_subject`,
    held to its site's rate by `rate`; see `site_lanes`). Its dead letters go to
    `dead_letter(dead_letter_name)` (default: the durable name)."""

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
        filter_subject: str | None = None,
        start_seq: int | None = None,
        dead_letter_name: str | None = None,
        rate: LaneRate | None = None,
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
        self.config = consumer_config(
            durable, filter_subject or all_sites_of_kind(kind), batch, ack_wait_s, start_seq
        )
        self.dead_letter_subject = dead_letter(dead_letter_name or durable)
        self.rate = rate

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, store and acknowledge until `stop` is set. The next batch is fetched and
        decoded while the previous one is being stored; acks stay in batch order. A fault in
        one round is logged and counted, and the loop goes on."""
        await ensure_consumer(self.js, FLEET_STREAM, self.config)
        puller = BatchPuller(self.nc, FLEET_STREAM, self.durable)
        await puller.start()
        log.info("ingest started kind=%s durable=%s", self.kind, self.durable)
        storing: asyncio.Task[None] | None = None
        keepalive: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                size, prefetch = await self._fetch_size(stop)
                if not size:
                    continue
                try:
                    fetched = await puller.fetch(size, self.idle_wait_s, prefetch=prefetch)
                except (nats.errors.ConnectionClosedError, nats.errors.Error) as exc:
                    log.warning("ingest fetch failed kind=%s error=%r", self.kind, exc)
                    await asyncio.sleep(self.idle_wait_s)
                    continue
                except Exception:
                    await self._round_failed("fetch", 0, stop)
                    continue
                if not fetched:
                    continue
                if self.rate is not None:
                    self.rate.spend(fetched)
                keepalive = asyncio.create_task(keep_in_progress(fetched, self.ack_wait_s))
                try:
                    batch = await self.decode_batch(fetched)
                except Exception:
                    keepalive.cancel()
                    await self._round_failed("decode", len(fetched), stop)
                    continue
                if storing is not None:
                    await storing
                storing = asyncio.create_task(self.store_and_ack(batch, stop, keepalive))
                keepalive = None
        finally:  # stopped: the batch in hand is stored; cancelled: it comes again; either
            # way nothing is left running
            if keepalive is not None:
                keepalive.cancel()
            if storing is not None:
                if not stop.is_set():
                    storing.cancel()  # unacknowledged: delivered again after the ack wait
                await asyncio.gather(storing, return_exceptions=True)
            await puller.stop()

    async def _fetch_size(self, stop: asyncio.Event) -> tuple[int, bool]:
        """How many messages to fetch now, and whether to ask for the next batch meanwhile
        (only if the lane's rate allows two more batches): 0 if `stop` came while waiting."""
        if self.rate is None:
            return self.batch, True
        allowance = await self.rate.allowance(self.batch, stop)
        return min(self.batch, allowance), allowance >= 2 * self.batch

    async def _round_failed(self, step: str, batch: int, stop: asyncio.Event) -> None:
        """Log and count a fault of one round, then pause (or stop, if asked meanwhile)."""
        log.exception(
            "ingest %s failed kind=%s batch=%d; unacknowledged messages come again in %.0f s",
            step,
            self.kind,
            batch,
            self.ack_wait_s,
        )
        self.counts["ingest-errors"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ERROR_PAUSE_S)

    async def decode_batch(self, fetched: list[Msg]) -> Batch:
        """The batch with the messages that validate; the others go to the dead-letter stream
        (or are held back if it cannot take them now)."""
        batch = Batch(fetched)
        for msg in fetched:
            try:
                batch.decoded.append(Decoded(msg, decode(msg)))
            except MessageDecodeError as error:
                if not await self.dead_letter(msg, error, refused_by="decoder"):
                    batch.held_back.append(msg)
        return batch

    async def store_and_ack(
        self, batch: Batch, stop: asyncio.Event, keepalive: asyncio.Task[None] | None = None
    ) -> None:
        """Store a batch, dead-letter what the store refuses for its data, then acknowledge
        every message in it. A failure that is not about the data is retried until the store
        succeeds or the consumer stops; any other fault is logged and counted. What is not
        acknowledged comes again after the ack wait. `keepalive` (the batch's
        `keep_in_progress`) ends with it."""
        try:
            stored = await self._store(batch, stop)
            if stored is None:
                return
            for msg in batch.to_acknowledge():
                await msg.ack()
            self.counts[self.kind] += stored
        except Exception:
            await self._round_failed("store", len(batch.fetched), stop)
        finally:
            if keepalive is not None:
                keepalive.cancel()

    async def _store(self, batch: Batch, stop: asyncio.Event) -> int | None:
        """How many messages were stored (the others dead-lettered or held back), or None if
        `stop` came while the store was failing."""
        backoff_s = self.idle_wait_s
        while True:
            held_back: list[Msg] = []
            try:
                stored = await self._store_or_refuse(batch.decoded, held_back)
                batch.held_back.extend(held_back)
                return stored
            except Exception:
                log.exception(
                    "ingest store failed kind=%s batch=%d; retrying",
                    self.kind,
                    len(batch.decoded),
                )
                if stop.is_set():
                    return None
                await asyncio.sleep(backoff_s)
                backoff_s = min(2 * backoff_s, MAX_RETRY_WAIT_S)

    async def _store_or_refuse(self, decoded: list[Decoded], held_back: list[Msg]) -> int:
        """Store `decoded` and say how many were stored. If the store refuses it for its data,
        store each half the same way until each refused message stands alone, and dead-letter
        those (into `held_back` if that fails): k refused messages in a batch of n cost about
        2k log2(n) writes. Raises what is not a refusal of the data (the caller retries; what
        was stored is ignored then)."""
        try:
            await self.write(self.kind, [d.message for d in decoded])
            return len(decoded)
        except Exception as error:
            if not refused_for_its_data(error):
                raise
            if len(decoded) == 1:
                if not await self.dead_letter(decoded[0].msg, error, refused_by="store"):
                    held_back.append(decoded[0].msg)
                return 0
            log.warning(
                "ingest store refused a batch kind=%s batch=%d error=%s; storing it in halves",
                self.kind,
                len(decoded),
                error_text(error, LOGGED_ERROR_MAX_CHARS),
            )
        half = len(decoded) // 2
        first = await self._store_or_refuse(decoded[:half], held_back)
        return first + await self._store_or_refuse(decoded[half:], held_back)

    async def dead_letter(self, msg: Msg, error: BaseException, *, refused_by: str) -> bool:
        """Keep a refused message with its error on the dead-letter stream, so that its batch
        may acknowledge it; False if the dead letter could not be published (logged and
        counted: the message is then held back and comes again). A dead letter published twice
        is kept once: its id is the consumer's and the stream sequence."""
        payload, headers = dead_letter_envelope(
            msg,
            error,
            refused_by=refused_by,
            letter_id=f"{self.durable}:{msg.metadata.sequence.stream}",
            max_payload=self.nc.max_payload,
        )
        try:
            await self.js.publish(self.dead_letter_subject, payload, headers=headers)
        except Exception:
            log.exception(
                "ingest dead letter failed kind=%s subject=%s sequence=%s; the message comes "
                "again in %.0f s",
                self.kind,
                msg.subject,
                headers[SEQUENCE_HEADER],
                self.ack_wait_s,
            )
            self.counts["ingest-errors"] += 1
            return False
        self.counts["dead-lettered"] += 1
        log.warning(
            "ingest dead-lettered kind=%s subject=%s sequence=%s refused_by=%s payload=%s error=%s",
            self.kind,
            msg.subject,
            headers[SEQUENCE_HEADER],
            refused_by,
            headers[PAYLOAD_HEADER],
            error_text(error, LOGGED_ERROR_MAX_CHARS),
        )
        return True

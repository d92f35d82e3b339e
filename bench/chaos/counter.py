"""The independent counter: what the camera wrote (its file names) against the frame scores and
rejections the hub's `FLEET` stream holds and the rows the coordinator's database holds.

It shares no code with the coordinator's store or ingest: it reads the database with plain SQL
(`sqlite3`, `psycopg`) and the stream as the fleet's read-only `operator` identity.

- scored: frames written that have a score or a rejection in `FLEET`;
- stored: frames written that have a row in `frame_scores` or `frame_rejections`;
- lost: written but not stored;
- duplicated: copies beyond one, counted twice over: in the stream (per message id, among the
  fleet's own messages: a scenario's deliberate resends carry no `Nats-Msg-Id` and are counted
  apart) and in the store (rows per frame, across scores and rejections: a frame both scored
  and rejected is a duplicate too).
"""

import asyncio
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from fleetbus.client import connect
from protos import FrameRejected, FrameScore, decode_subject_message
from protos.streams import FLEET_STREAM

POLL_S = 0.1
MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True)
class Tally:
    """One scenario's count."""

    written: int
    scored: int
    stored: int
    stream_copies: int
    store_copies: int
    resent_in_stream: int
    """Copies a scenario resent on purpose (without a message id) that `FLEET` holds."""

    @property
    def lost(self) -> int:
        return self.written - self.stored


def _query(database_url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of `sql` on the coordinator's database (none before its tables exist)."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                return list(db.execute(sql))
        except sqlite3.OperationalError:  # not created yet, or its schema not there yet
            return []
    try:
        with psycopg.connect(database_url, connect_timeout=5) as db:
            return list(db.execute(sql))  # type: ignore[call-overload]
    except psycopg.errors.UndefinedTable:
        return []


def stored_file_names(database_url: str) -> list[str]:
    """One file name per frame row: scores and rejections."""
    rows = _query(
        database_url,
        "SELECT file_name FROM frame_scores UNION ALL SELECT file_name FROM frame_rejections",
    )
    return [str(row[0]) for row in rows]


def site_clock_offset_s(database_url: str) -> float | None:
    """The median of (the site's `scored_at` - the centre's `ingested_at`): how far the site's
    clock is from the centre's, plus the (sub-second) delivery time."""
    rows = _query(database_url, "SELECT scored_at, ingested_at FROM frame_scores")
    offsets = [(_as_datetime(a) - _as_datetime(b)).total_seconds() for a, b in rows]
    return statistics.median(offsets) if offsets else None


def site_heartbeat_age_s(database_url: str) -> float | None:
    """How old the centre finds the site's latest heartbeat now (its `heartbeat_at`, written
    on the site's clock, against the centre's): what decides whether the console calls the site
    offline (`heartbeat_stale_s`, 60 s)."""
    rows = _query(database_url, "SELECT heartbeat_at FROM sites WHERE heartbeat_at IS NOT NULL")
    if not rows:
        return None
    latest = max(_as_datetime(row[0]) for row in rows)
    return (datetime.now(UTC).replace(tzinfo=None) - latest).total_seconds()


def _as_datetime(value: object) -> datetime:
    """A stored time as a naive UTC datetime (SQLite gives text, PostgreSQL datetimes)."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


@dataclass(frozen=True)
class FrameInStream:
    """A frame score or rejection in `FLEET`; `resent`: it carries no `Nats-Msg-Id` (the fleet
    always sets one: only a scenario's deliberate resend lacks it)."""

    message_id: str
    file_name: str
    resent: bool


async def frame_messages_in_stream(hub_url: str, operator_seed: str) -> list[FrameInStream]:
    """Every frame score and rejection in `FLEET`, read message by message."""
    nc = await connect(hub_url, name="chaos-counter", nkey_seed=operator_seed)
    found = []
    try:
        js = nc.jetstream()
        state = (await js.stream_info(FLEET_STREAM)).state
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            raw = await js.get_msg(FLEET_STREAM, seq)
            message = decode_subject_message(raw.subject, raw.data)
            resent = MSG_ID_HEADER not in (raw.headers or {})
            if isinstance(message, FrameScore):
                found.append(FrameInStream(message.message_id, message.frame.file_name, resent))
            elif isinstance(message, FrameRejected):
                found.append(FrameInStream(message.message_id, message.file_name, resent))
    finally:
        await nc.close()
    return found


async def count(
    written: Iterable[str], database_url: str, hub_url: str, operator_seed: str
) -> Tally:
    """The scenario's tally."""
    wanted = set(written)
    in_stream = await frame_messages_in_stream(hub_url, operator_seed)
    rows = [name for name in stored_file_names(database_url) if name in wanted]
    own = Counter(m.message_id for m in in_stream if not m.resent)
    return Tally(
        written=len(wanted),
        scored=len(wanted & {m.file_name for m in in_stream}),
        stored=len(set(rows)),
        stream_copies=sum(n - 1 for n in own.values()),
        store_copies=len(rows) - len(set(rows)),
        resent_in_stream=sum(m.resent for m in in_stream),
    )


async def until_stored(
    database_url: str, due: set[str], *, since: float, timeout_s: float
) -> float | None:
    """Seconds from `since` (a `time.monotonic()`) until the store holds every frame in `due`;
    None when it did not within `timeout_s` of now."""
    return (await delivery(database_url, due, since=since, timeout_s=timeout_s)).all_s


@dataclass(frozen=True)
class Delivery:
    """How the store caught up with `due` after `since`."""

    missing: int
    """Frames of `due` not stored at the start."""
    first_s: float | None
    """Until the first of them was stored."""
    all_s: float | None
    """Until all were."""


async def delivery(database_url: str, due: set[str], *, since: float, timeout_s: float) -> Delivery:
    """Wait until the store holds every frame in `due` (see `Delivery`)."""
    deadline = time.monotonic() + timeout_s
    missing = due - set(await asyncio.to_thread(stored_file_names, database_url))
    first_s = None if missing else 0.0
    while time.monotonic() < deadline:
        held = set(await asyncio.to_thread(stored_file_names, database_url))
        if first_s is None and missing & held:
            first_s = time.monotonic() - since
        if due <= held:
            return Delivery(len(missing), first_s, time.monotonic() - since)
        await asyncio.sleep(POLL_S)
    return Delivery(len(missing), first_s, None)

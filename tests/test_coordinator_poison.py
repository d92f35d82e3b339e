"""No message can stop ingest: what the store refuses is dead-lettered while the rest of its
batch is stored, a message too big to copy is dead-lettered by reference without breaking the
consumer's connection, and a refused message whose dead letter cannot be published yet is held
back (unacknowledged) while the others are stored. Real nats-server, SQLite and PostgreSQL."""

import json
import logging
import sqlite3

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from coordinator.dead_letters import (
    ERROR_HEADER,
    ERROR_MAX_CHARS,
    PAYLOAD_HEADER,
    REFUSED_BY_HEADER,
    SEQUENCE_HEADER,
    SIZE_HEADER,
    STREAM_HEADER,
    SUBJECT_HEADER,
)
from coordinator.service import Coordinator
from coordinator.store.tables import FrameScoreRow
from fleetbus.client import MSG_ID_HEADER, publish
from fleetbus.streams import ensure_streams
from protos import FrameScore
from protos.streams import DEAD_LETTER_STREAM, FLEET_STREAM, central_streams
from protos.subjects import subject_for
from tests.coordinators import (
    coordinator_settings,
    eventually,
    make_score,
)

BEYOND_SQL_INTEGERS = 10**20
"""A source count no SQL integer column holds: the contract bounds it below only (`ge=0`), so it
decodes, and SQLite (a Python int over 64 bits) and PostgreSQL (INTEGER out of range) refuse it."""


def stored_score_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(FrameScoreRow.message_id)).scalars())


def with_source_count(score: FrameScore, count: int) -> FrameScore:
    """The score as a site could send it, with a source count the contract does not bound."""
    return score.model_copy(
        update={"metrics": score.metrics.model_copy(update={"source_count": count})}
    )


async def dead_letters(js, expected: int):
    subscription = await js.pull_subscribe("fleet.deadletter.>", stream=DEAD_LETTER_STREAM)
    letters = await subscription.fetch(expected, timeout=5)
    assert len(letters) == expected
    return letters


async def test_a_message_the_store_refuses_is_dead_lettered_and_the_rest_is_stored(
    coordinator,
    fleet_bus,
):
    _, js = fleet_bus
    before = [make_score("la-silla", i) for i in range(5)]
    poison = with_source_count(make_score("la-silla", 99), BEYOND_SQL_INTEGERS)
    after = [make_score("la-silla", i) for i in range(5, 10)]
    for score in [*before, poison, *after]:
        await publish(js, score)

    good = {s.message_id for s in [*before, *after]}
    await eventually(lambda: stored_score_ids(coordinator.engine) == good)
    (letter,) = await dead_letters(js, 1)
    assert letter.data == poison.model_dump_json().encode()
    assert letter.headers[SUBJECT_HEADER] == subject_for(poison)
    assert letter.headers[REFUSED_BY_HEADER] == "store"
    assert "integer" in letter.headers[ERROR_HEADER].lower()
    assert coordinator.counts["dead-lettered"] == 1

    # The batch was acknowledged: nothing comes again, and later messages are stored.
    consumer = await js.consumer_info(FLEET_STREAM, "coordinator-frame-score-la-silla")
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    late = make_score("la-silla", 10)
    await publish(js, late)
    await eventually(lambda: late.message_id in stored_score_ids(coordinator.engine))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_locked_database_is_waited_for_and_nothing_is_dead_lettered(
    coordinator,
    fleet_bus,
    caplog,
):
    _, js = fleet_bus
    caplog.set_level(logging.ERROR, logger="coordinator.ingest")
    locker = sqlite3.connect(coordinator.engine.url.database, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the database's write lock
    try:
        scores = [make_score("la-silla", i) for i in range(3)]
        for score in scores:
            await publish(js, score)

        def store_found_it_locked() -> bool:
            return any(
                isinstance(r.exc_info and r.exc_info[1], OperationalError)
                and "locked" in str(r.exc_info[1])
                for r in caplog.records
            )

        await eventually(store_found_it_locked)  # after SQLite's busy timeout (10 s)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    await eventually(lambda: stored_score_ids(coordinator.engine) == {s.message_id for s in scores})
    assert coordinator.counts["dead-lettered"] == 0
    assert (await js.stream_info(DEAD_LETTER_STREAM)).state.messages == 0


def oversized_score_payload(score: FrameScore, max_payload: int) -> bytes:
    """A frame score padded with unknown keys to just under what the server accepts: a site
    can publish it, and its dead letter (payload, error and headers) could not be a copy."""
    data = json.loads(score.model_dump_json())
    key = 0
    while len(json.dumps(data)) < max_payload - 2_000:
        data.update({f"unknown_{key + i:07d}": 0 for i in range(1_000)})
        key += 1_000
    payload = json.dumps(data).encode()
    while len(payload) > max_payload - 1_000:
        data.popitem()
        payload = json.dumps(data).encode()
    return payload


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_message_too_big_to_copy_is_dead_lettered_by_reference(
    coordinator,
    fleet_bus,
):
    nc, js = fleet_bus
    huge = make_score("la-silla", 1)
    payload = oversized_score_payload(huge, nc.max_payload)
    ack = await js.publish(subject_for(huge), payload, headers={MSG_ID_HEADER: "huge-1"})
    good = make_score("la-silla", 2)
    await publish(js, good)

    await eventually(lambda: stored_score_ids(coordinator.engine) == {good.message_id})
    (letter,) = await dead_letters(js, 1)
    assert letter.headers[PAYLOAD_HEADER] == "prefix"
    assert payload.startswith(letter.data) and len(letter.data) < len(payload)
    assert letter.headers[REFUSED_BY_HEADER] == "decoder"
    assert letter.headers[STREAM_HEADER] == FLEET_STREAM
    assert letter.headers[SEQUENCE_HEADER] == str(ack.seq)
    assert letter.headers[SIZE_HEADER] == str(len(payload))
    error = letter.headers[ERROR_HEADER]
    assert error.startswith("invalid frame-score message: unknown_0000000")
    assert len(error) <= ERROR_MAX_CHARS
    # The reference leads to the original, kept in the stream for its max age.
    original = await js.get_msg(FLEET_STREAM, int(letter.headers[SEQUENCE_HEADER]))
    assert original.data == payload
    # The coordinator's connection never broke.
    assert coordinator._nc.is_connected
    assert coordinator._nc.stats["reconnects"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_message_that_cannot_be_dead_lettered_yet_is_held_back_and_ingest_goes_on(
    nats_server,
    fleet_bus,
    database_url,
):
    _, js = fleet_bus
    running = Coordinator(
        coordinator_settings(nats_server.url, database_url, ingest_ack_wait_s=1.0)
    )
    await running.start()
    try:
        # Without the dead-letter stream, a malformed message cannot be dead-lettered: it is
        # held back (not acknowledged, so it comes again after the ack wait).
        await js.delete_stream(DEAD_LETTER_STREAM)
        subject = subject_for(make_score("la-silla", 0))
        await js.publish(subject, b"{not json", headers={MSG_ID_HEADER: "broken-1"})
        await eventually(lambda: running.counts["ingest-errors"] >= 1)

        first = make_score("la-silla", 1)
        await publish(js, first)
        await eventually(lambda: stored_score_ids(running.engine) == {first.message_id})

        # Once the stream is back, the redelivered malformed message is dead-lettered.
        await ensure_streams(js, central_streams())
        (letter,) = await dead_letters(js, 1)
        assert letter.data == b"{not json"
        await eventually(lambda: running.counts["dead-lettered"] == 1)
        second = make_score("la-silla", 2)
        await publish(js, second)
        await eventually(
            lambda: stored_score_ids(running.engine) == {first.message_id, second.message_id}
        )
    finally:
        await running.stop()

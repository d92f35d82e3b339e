"""Ingest from real JetStream: malformed messages are dead-lettered without stopping the
consumer, a message delivered twice is stored once, each frame's search record reaches the
store once, and a coordinator killed with SIGKILL in the middle of 10,000 scores loses none and
counts none twice after a restart."""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coordinator.dead_letters import ERROR_HEADER, SUBJECT_HEADER
from coordinator.store import reads
from coordinator.store.engine import open_engine
from coordinator.store.tables import FrameScoreRow
from fleetbus.client import MSG_ID_HEADER, publish
from protos.streams import DEAD_LETTER_STREAM, FLEET_STREAM
from protos.subjects import subject_for
from tests.coordinators import (
    eventually,
    make_score,
    make_search,
)

SCORES = 10_000


def stored_scores(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(FrameScoreRow)).scalar_one()


async def test_malformed_messages_go_to_dead_letter_and_ingest_goes_on(coordinator, fleet_bus):
    _, js = fleet_bus
    valid = make_score("la-silla", 1)
    wrong_site = make_score("paranal", 2)
    subject = subject_for(valid)
    await js.publish(subject, b"{not json", headers={MSG_ID_HEADER: "broken-1"})
    await js.publish(subject, wrong_site.model_dump_json().encode(), headers={MSG_ID_HEADER: "x-2"})
    await publish(js, valid)

    await eventually(lambda: coordinator.summary().frames == 1)
    dead = await js.pull_subscribe("fleet.deadletter.>", stream=DEAD_LETTER_STREAM)
    letters = await dead.fetch(2, timeout=5)
    assert [m.headers[SUBJECT_HEADER] for m in letters] == [subject, subject]
    assert "invalid frame-score message" in letters[0].headers[ERROR_HEADER]
    assert "site_id" in letters[1].headers[ERROR_HEADER]
    assert letters[0].data == b"{not json"
    assert coordinator.counts["dead-lettered"] == 2


async def test_a_message_delivered_twice_is_stored_once(coordinator, fleet_bus):
    _, js = fleet_bus
    score = make_score("la-silla", 7)
    payload = score.model_dump_json().encode()
    # Two copies in the stream (as a leaf-node source can produce, nats-server #7796).
    await js.publish(subject_for(score), payload, headers={MSG_ID_HEADER: "copy-1"})
    await js.publish(subject_for(score), payload, headers={MSG_ID_HEADER: "copy-2"})
    assert (await js.stream_info(FLEET_STREAM)).state.messages == 2

    await eventually(lambda: coordinator.counts["frame-score"] == 2)
    assert stored_scores(coordinator.engine) == 1
    assert coordinator.summary().sites[0].frames == 1


async def test_each_frame_search_record_is_stored_once(coordinator, fleet_bus):
    _, js = fleet_bus
    searched = make_search(make_score("la-silla", 1), candidates=3)
    skipped = make_search(make_score("la-silla", 2), skipped_reason="frame has no WCS")
    await publish(js, searched)
    await publish(js, skipped)
    # The same record again, past JetStream's duplicate window (another Nats-Msg-Id).
    payload = searched.model_dump_json().encode()
    await js.publish(subject_for(searched), payload, headers={MSG_ID_HEADER: "again-1"})

    await eventually(lambda: coordinator.counts["frame-searched"] == 3)
    with coordinator.engine.connect() as conn:
        records = reads.frame_searches(conn, searched.frame.sha256)
        (skipped_record,) = reads.frame_searches(conn, skipped.frame.sha256)
    assert [(r.message_id, r.attempted, r.candidates) for r in records] == [
        (searched.message_id, True, 3)
    ]
    assert skipped_record.skipped_reason == "frame has no WCS"


# The coordinator process, run through its embeddable entry point (the `skyfleet` command
# imports every sub-command, which is slow to start and beside the point here).
# The ack wait outlasts the restart, so the restarted coordinator gets new messages before the
# server redelivers those the killed one held: acking the new ones must not drop the held ones.
ACK_WAIT_S = 8.0
COORDINATOR_PROCESS = f"""
import asyncio, signal, sys
from coordinator.service import run_coordinator
from coordinator.settings import CoordinatorSettings

async def main():
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    settings = CoordinatorSettings(
        nats_url=sys.argv[1], database_url=sys.argv[2], serve_console=False, ingest_batch=100,
        ingest_ack_wait_s={ACK_WAIT_S},
    )
    await run_coordinator(settings, stop)

asyncio.run(main())
"""


def start_coordinator(nats_url: str, database: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", COORDINATOR_PROCESS, nats_url, database],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_kill_9_during_ingest_loses_nothing_and_counts_nothing_twice(
    nats_server,
    fleet_bus,
    database_url,
    tmp_path,
):
    _, js = fleet_bus
    scores = [make_score(f"site-{i % 3}", i) for i in range(SCORES)]
    for start in range(0, SCORES, 500):
        await asyncio.gather(*(publish(js, s) for s in scores[start : start + 500]))
    engine = open_engine(database_url)
    log = tmp_path / "coordinator.log"

    first = start_coordinator(nats_server.url, database_url, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if first.poll() is not None:
                raise AssertionError(f"coordinator exited:\n{log.read_text()}")
            try:
                if stored_scores(engine) > 0:
                    break
            except Exception:  # the schema is not created yet
                pass
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = stored_scores(engine)
        assert 0 < at_kill < SCORES, f"kill came too late: {at_kill} stored"

        second = start_coordinator(nats_server.url, database_url, log)
        try:
            await eventually(lambda: stored_scores(engine) == SCORES, timeout_s=60)
            await asyncio.sleep(0.5)  # nothing more arrives
            assert stored_scores(engine) == SCORES
            for site in ("site-0", "site-1", "site-2"):  # one lane per site
                consumer = await js.consumer_info(FLEET_STREAM, f"coordinator-frame-score-{site}")
                assert consumer.num_pending == 0
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        engine.dispose()
    with engine.connect() as conn:
        ids = set(conn.execute(select(FrameScoreRow.message_id)).scalars())
    assert ids == {s.message_id for s in scores}

"""Batched pulls from a durable consumer on a real nats-server: order, timing, nothing lost."""

import asyncio
import time

from nats.js.api import AckPolicy, ConsumerConfig

from fleetbus.client import decode, publish_all
from fleetbus.pull import LINGER_S, BatchPuller, ensure_consumer
from protos.streams import FLEET_STREAM
from tests.examples import frame_score


def _consumer(durable: str, ack_wait_s: float = 30.0) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        filter_subject="fleet.site.*.frame.scored",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
    )


async def _publish_scores(js, count: int, first: int = 0) -> list[str]:
    scores = [frame_score(sha256=f"{i:064x}") for i in range(first, first + count)]
    await publish_all(js, scores)
    return [s.message_id for s in scores]


async def _puller(nc, js, durable: str, ack_wait_s: float = 30.0) -> BatchPuller:
    await ensure_consumer(js, FLEET_STREAM, _consumer(durable, ack_wait_s))
    puller = BatchPuller(nc, FLEET_STREAM, durable)
    await puller.start()
    return puller


async def test_batches_come_full_and_in_publish_order(fleet_bus):
    nc, js = fleet_bus
    sent = await _publish_scores(js, 250)
    puller = await _puller(nc, js, "ordered")
    batches = [await puller.fetch(100, wait_s=2.0) for _ in range(3)]
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [decode(m).message_id for b in batches for m in b] == sent
    await puller.stop()


async def test_an_empty_consumer_returns_nothing_after_the_wait(fleet_bus):
    nc, js = fleet_bus
    puller = await _puller(nc, js, "empty")
    started = time.perf_counter()
    assert await puller.fetch(100, wait_s=0.3) == []
    assert 0.25 < time.perf_counter() - started < 2.0
    await puller.stop()


async def test_a_trickle_is_handed_over_without_waiting_for_a_full_batch(fleet_bus):
    nc, js = fleet_bus
    puller = await _puller(nc, js, "trickle")
    fetching = asyncio.create_task(puller.fetch(1000, wait_s=10.0))
    await asyncio.sleep(0.2)
    published = time.perf_counter()
    await _publish_scores(js, 3)
    batch = await fetching
    assert len(batch) == 3
    assert time.perf_counter() - published < LINGER_S + 1.0  # not the 10 s wait
    await puller.stop()


async def test_messages_fetched_but_not_acknowledged_are_delivered_again(fleet_bus):
    nc, js = fleet_bus
    sent = await _publish_scores(js, 30)
    first = await _puller(nc, js, "redeliver", ack_wait_s=1.0)
    taken = await first.fetch(10, wait_s=2.0)
    for msg in taken:
        await msg.ack()
    await first.fetch(10, wait_s=2.0)  # taken, then the reader "dies" without acking
    await first.stop()
    second = BatchPuller(nc, FLEET_STREAM, "redeliver")
    await second.start()
    again: set[str] = set()
    deadline = time.perf_counter() + 10
    while len(again) < 20 and time.perf_counter() < deadline:
        batch = await second.fetch(20, wait_s=1.0)
        again |= {decode(m).message_id for m in batch}
        for msg in batch:
            await msg.ack()
    assert again == set(sent[10:])
    await second.stop()


async def test_a_consumer_left_with_another_ack_policy_is_replaced(fleet_bus):
    _, js = fleet_bus
    await js.add_consumer(FLEET_STREAM, _consumer("upgraded").evolve(ack_policy=AckPolicy.ALL))
    await ensure_consumer(js, FLEET_STREAM, _consumer("upgraded"))
    info = await js.consumer_info(FLEET_STREAM, "upgraded")
    assert info.config.ack_policy == AckPolicy.EXPLICIT

"""Tasks busy with NATS requests stop when asked to, every time (see `fleetbus.tasks`)."""

import asyncio
import random

from fleetbus.tasks import cancel_and_wait
from protos.streams import FLEET_STREAM


async def _requests_for_ever(js) -> None:
    while True:
        await js.stream_info(FLEET_STREAM)


async def test_a_loop_of_jetstream_requests_stops_whenever_it_is_cancelled(fleet_bus):
    _, js = fleet_bus
    rng = random.Random(7)
    ran_on = 0
    for _ in range(100):
        task = asyncio.create_task(_requests_for_ever(js))
        await asyncio.sleep(rng.uniform(0.0, 0.01))  # cancelled at a random point of a request
        ran_on += len(await cancel_and_wait([task], timeout_s=5))
    assert ran_on == 0

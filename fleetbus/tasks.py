"""Stopping asyncio tasks that talk to NATS.

One `task.cancel()` does not always stop such a task on Python 3.11: `asyncio.wait_for` there
returns a result that arrived in the same loop iteration as the cancellation and drops the
cancellation (CPython gh-86296, fixed in 3.12 where `wait_for` uses `asyncio.timeout`). nats-py
waits for every request's reply with `wait_for`, so a loop of requests cancelled once may run
on for ever, and whoever awaits it hangs (measured: 182 of 300 single cancels of a loop of
JetStream requests were dropped). `cancel_and_wait` cancels again until the task has ended.
"""

import asyncio
from collections.abc import Iterable
from typing import Any

RECANCEL_EVERY_S = 0.05


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, timeout_s: float
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait until each has ended, cancelling those still running again
    every `RECANCEL_EVERY_S`. Returns the tasks still running after `timeout_s` (a task that
    keeps catching its cancellation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, remaining))
    return pending

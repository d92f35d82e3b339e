"""Keeping a child server running: a `ProcessSupervisor` watches one `ServerProcess` (a site's
leaf nats-server, the hub of `skyfleet nats up`) and starts it again when it exits, or when its
owner's fault check says it is running but broken, with back-off, a logged report and a count.

Restarting reuses the same configuration (ports, data folder), so the clients reconnect by
themselves and JetStream recovers its store: nothing that was acknowledged is lost.
"""

import asyncio
import logging
from collections.abc import Callable

from fleetbus.process import ServerProcess

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
"""How often the process is looked at: a dead server is back about a second after it died
(nats-server is ready 10-60 ms after it starts)."""
RESTART_BACKOFF_MIN_S = 0.0
RESTART_BACKOFF_MAX_S = 30.0
"""The first restart is at once; one that fails again soon waits 1, 2, 4 ... up to 30 s, so a
server that cannot start (its port taken, its disk gone) is retried without a log storm."""
HEALTHY_RUN_S = 60.0
"""A server that has run this long since its last restart restarts at once again."""

FaultCheck = Callable[[], str | None]
"""Says why a running server must be restarted (None: it is fine). Runs in a worker thread."""


class ProcessSupervisor:
    """Restarts `server` when it exits or `fault()` says it is broken; `await run()` until
    cancelled. `restarts` counts the restarts, `last_fault` says why the last one happened."""

    def __init__(
        self,
        server: ServerProcess,
        *,
        name: str,
        fault: FaultCheck | None = None,
        on_restart: Callable[[str, str], None] | None = None,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.server = server
        self.name = name
        self.restarts = 0
        self.last_fault: str | None = None
        self._fault = fault
        self._on_restart = on_restart
        self._check_every_s = check_every_s

    def fault(self) -> str | None:
        """Why the server must be restarted now, if it must."""
        status = self.server.exit_status
        if status is not None:
            return f"{self.server.program} exited with status {status}"
        if not self.server.running:
            return None  # stopped on purpose (or never started): not ours to start
        return self._fault() if self._fault is not None else None

    async def run(self) -> None:
        """Watch and restart until cancelled."""
        loop = asyncio.get_running_loop()
        backoff_s = RESTART_BACKOFF_MIN_S
        restarted_at = loop.time()
        while True:
            await asyncio.sleep(self._check_every_s)
            reason = await asyncio.to_thread(self.fault)
            if reason is None:
                continue
            if loop.time() - restarted_at >= HEALTHY_RUN_S:
                backoff_s = RESTART_BACKOFF_MIN_S
            self.restarts += 1
            self.last_fault = reason
            log.error(
                "restarting component=%s reason=%r restart=%d in_s=%.1f",
                self.name,
                reason,
                self.restarts,
                backoff_s,
            )
            if self._on_restart is not None:
                self._on_restart(self.name, reason)
            await asyncio.sleep(backoff_s)
            try:
                await asyncio.to_thread(self.server.restart)
            except self.server.error as exc:
                log.error("restart failed component=%s error=%s", self.name, exc)
            else:
                log.warning("restarted component=%s restart=%d", self.name, self.restarts)
            restarted_at = loop.time()
            backoff_s = min(max(2 * backoff_s, 1.0), RESTART_BACKOFF_MAX_S)

"""A service whose bus does not answer behaves like a good daemon: it says what it cannot reach
a bounded number of times, ends at once when asked to, and a one-shot command gives up with a
clear error."""

import asyncio
import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fleetbus.client import BusUnreachableError, ErrorReports, connect, connect_unless_stopped
from fleetbus.server import free_port
from tests.conftest import SKYFLEET

STOP_PROMISE_S = 10.0
"""A systemd or Kubernetes stop gets the process ended within this long."""
AGENT_START_LIMIT_S = 90.0
"""How long an agent may take to start and try its bus (a loaded CI machine)."""


def test_repeated_errors_are_reported_with_a_doubling_interval(caplog):
    now = [0.0]
    reports = ErrorReports("site-agent-a", "nats://10.0.0.1:4222", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="fleetbus.client"):
        for _ in range(2 * 3600):  # an hour of two failed attempts a second
            reports.error(ConnectionRefusedError("refused"))
            now[0] += 0.5
    lines = [r.getMessage() for r in caplog.records]
    assert 10 <= len(lines) <= 25  # 1, 2, 4 ... 300 s apart, not 7,200 lines
    assert all("url=nats://10.0.0.1:4222" in line and "refused" in line for line in lines)
    assert "failed_since_last_report=0" in lines[0]


async def test_a_one_shot_connect_gives_up_naming_the_address():
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BusUnreachableError, match=rf"cannot reach NATS at {url} within 1 s"):
        await connect(url, name="test", give_up_after_s=1.0)
    assert time.monotonic() - started < 5.0


async def test_a_stop_ends_a_connect_that_would_wait_for_ever():
    stop = asyncio.Event()
    url = f"nats://127.0.0.1:{free_port()}"
    waiting = asyncio.create_task(connect_unless_stopped(url, name="test", stop=stop))
    await asyncio.sleep(1.0)
    stop.set()
    assert await asyncio.wait_for(waiting, STOP_PROMISE_S) is None


def _wait_for_the_first_bus_error(log_path: Path) -> None:
    """Until the agent is up and has failed to reach its bus once (torch loads first: seconds on
    a quiet machine, many more on a loaded one)."""
    deadline = time.monotonic() + AGENT_START_LIMIT_S
    while "nats error" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.2)


def test_a_site_agent_without_its_bus_logs_little_and_stops_on_sigterm(tmp_path):
    watch = tmp_path / "incoming"
    watch.mkdir()
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        command = [SKYFLEET, "site", "run", "--site-id", "lost", "--watch", str(watch)]
        command += ["--work-dir", str(tmp_path / "work")]
        command += ["--nats", f"nats://127.0.0.1:{free_port()}"]
        agent = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_the_first_bus_error(log_path)
            time.sleep(8.0)  # some 16 more attempts to reach the bus, that must not be logged
            agent.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = agent.wait(timeout=STOP_PROMISE_S + 5)
            took_s = time.monotonic() - stopped
        finally:
            if agent.poll() is None:
                agent.kill()
    text = log_path.read_text()
    errors = [line for line in text.splitlines() if "nats error" in line]
    assert code == 0 and took_s < STOP_PROMISE_S, text[-2000:]
    assert 1 <= len(errors) <= 6, text[-2000:]
    assert "nats://127.0.0.1:" in errors[0]
    assert "stopped before its bus answered" in text

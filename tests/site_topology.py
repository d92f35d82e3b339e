"""Store-and-forward topology for site tests: a hub and sites' leaf servers, the coordinator as
its own process, real processes all, and helpers that read what arrived at the centre."""

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from nats.js import JetStreamContext

from fleetbus.client import connect
from fleetbus.hub import ensure_hub_streams, hub_server_config, keep_sources_flowing
from fleetbus.server import EmbeddedNats
from fleetbus.tasks import cancel_and_wait
from protos import FleetMessage, FrameRejected, FrameScore, decode_subject_message
from protos.streams import FLEET_STREAM
from site_agent.site_nats import site_server_config
from tests.conftest import SKYFLEET

RECOVERY_S = 10.0
"""The promise to an unattended observatory: after a fault ends, the fleet delivers again
within this long by itself (issue 18)."""


@contextmanager
def running_hub(
    store_dir: Path, *, authorization_file: Path | None = None
) -> Iterator[EmbeddedNats]:
    """A central server in the `hub` domain, listening for leaf nodes; with
    `authorization_file` (`skyfleet fleet credentials`' hub-auth.conf) only the fleet's
    identities get in."""
    with EmbeddedNats(hub_server_config(store_dir, authorization_file=authorization_file)) as hub:
        yield hub


@contextmanager
def running_site_server(store_dir: Path, site_id: str, hub: EmbeddedNats) -> Iterator[EmbeddedNats]:
    """A site's own leaf server connected to `hub`."""
    config = site_server_config(site_id, store_dir, hub_leaf_url=hub.config.leaf_url)
    with EmbeddedNats(config) as server:
        yield server


async def join(hub: EmbeddedNats, site_ids: list[str]) -> None:
    """Make the hub source these sites."""
    nc = await connect(hub.url, name="test-join")
    try:
        await ensure_hub_streams(nc.jetstream(), site_ids)
    finally:
        await nc.close()


@asynccontextmanager
async def hub_sourcing(hub: EmbeddedNats, site_ids: list[str]) -> AsyncIterator[JetStreamContext]:
    """The hub sourcing these sites, with its source keeper running, as a hub process would;
    yields a JetStream context on the hub."""
    nc = await connect(hub.url, name="test-hub")
    js = nc.jetstream()
    await ensure_hub_streams(js, site_ids)
    keeper = asyncio.create_task(keep_sources_flowing(nc))
    try:
        yield js
    finally:
        await cancel_and_wait([keeper], timeout_s=10)
        with contextlib.suppress(Exception):  # the hub may be down
            await nc.close()


async def stored_messages(js: JetStreamContext, stream: str = FLEET_STREAM) -> list[FleetMessage]:
    """Every message a stream holds, decoded strictly."""
    info = await js.stream_info(stream)
    messages: list[FleetMessage] = []
    if info.state.messages == 0:
        return messages
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await js.get_msg(stream, seq)
        messages.append(decode_subject_message(raw.subject, raw.data))
    return messages


async def wait_for_stored(
    js: JetStreamContext, count: int, *, timeout_s: float, stream: str = FLEET_STREAM
) -> int:
    """Wait until `stream` holds at least `count` messages; returns how many it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = (await js.stream_info(stream)).state.messages
        if held >= count or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.1)


async def frame_messages_at_hub(
    js: JetStreamContext, count: int, *, timeout_s: float
) -> tuple[list[FrameScore], list[FrameRejected]]:
    """The scores and rejections in `FLEET`, once there are `count` of them (or at timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        messages = await stored_messages(js)
        scores = [m for m in messages if isinstance(m, FrameScore)]
        rejections = [m for m in messages if isinstance(m, FrameRejected)]
        if len(scores) + len(rejections) >= count or time.monotonic() > deadline:
            return scores, rejections
        await asyncio.sleep(0.5)


def start_coordinator_process(
    nats_url: str,
    database: Path | None,
    log_path: Path,
    *,
    sites: list[str] | None = None,
    database_url: str | None = None,
    nkey_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`skyfleet coordinator run` as documented (its default settings, no console) on a SQLite
    file (or on `database_url`, e.g. PostgreSQL); `sites`: the sites its hub sources
    (`SKYFLEET_COORDINATOR_SITES`); `nkey_file`: its identity on a hub that requires one
    (`SKYFLEET_COORDINATOR_NKEY_FILE`)."""
    args = [str(SKYFLEET), "coordinator", "run", "--nats", nats_url, "--no-console"]
    args += ["--database", database_url or f"sqlite:///{database}"]
    env = dict(os.environ)
    if sites is not None:
        env["SKYFLEET_COORDINATOR_SITES"] = json.dumps(sites)
    if nkey_file is not None:
        env["SKYFLEET_COORDINATOR_NKEY_FILE"] = str(nkey_file)
    with log_path.open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)


@contextmanager
def coordinator_process(
    nats_url: str, database: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`start_coordinator_process` for the duration of the block, stopped with SIGTERM."""
    process = start_coordinator_process(nats_url, database, log_path)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scored_files_in_store(database: Path) -> list[str]:
    """The file names of the frame scores in a coordinator's SQLite store (none before it
    exists)."""
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(database)) as db:
        try:
            return [row[0] for row in db.execute("SELECT file_name FROM frame_scores")]
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def leaf_links(hub: EmbeddedNats) -> list[str]:
    """The names of the leaf servers linked to the hub now (its monitoring endpoint); none
    while the hub is restarting and its monitoring port is closed."""
    try:
        with urllib.request.urlopen(f"{hub.config.monitor_url}/leafz", timeout=5) as answer:
            return sorted(leaf["name"] for leaf in json.load(answer).get("leafs") or [])
    except (urllib.error.URLError, ConnectionError):
        return []


async def wait_for(condition, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.2)):
        if condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")

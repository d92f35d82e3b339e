"""One chaos scenario's fleet, from a clean state and with the fleet's identities on
(`chaos_fleet`): credentials issued into the scenario's folder (`skyfleet fleet credentials`),
the hub nats-server with their `hub-auth.conf`, a `LinkProxy` between the site's leaf server and
the hub's leaf port, `skyfleet coordinator run` as a process with
`SKYFLEET_COORDINATOR_NKEY_FILE` (on SQLite or on a fresh PostgreSQL database) and `skyfleet
site run` as a process with `--hub-nkey-file`; and what a fault does to them: kill, stop and
start each part, find the site's leaf server, wait for the coordinator to have taken everything.

`FleetSpec` says what differs between scenarios: the database, a skewed clock for the site
agent (libfaketime preloaded into its process), parts of the site's work folder or the
coordinator's database on small disks of their own (tmpfs, `tests.disks`; needs root).
"""

import asyncio
import glob
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from bench.chaos.proxy import LinkProxy
from fleetbus.client import connect
from fleetbus.identity import issue_credentials, read_seed
from fleetbus.server import EmbeddedNats, free_port
from protos.streams import FLEET_STREAM
from site_agent.settings import SiteAgentSettings
from tests.disks import small_disk
from tests.site_agents import site_settings, start_agent_process
from tests.site_topology import running_hub, start_coordinator_process

SITE_ID = "chaos"
POSTGRES_ADMIN_URL = os.environ.get(
    "SKYFLEET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SITE_DISK_MB = {"work": 160, "quarantine": 8, "nats": 160}
"""Sizes of the site's small disks: the work folder (its state, and whatever has no disk of its
own), the quarantine, the site's JetStream store (its outbox)."""
CENTRE_DISK_MB = 32
SITE_MIN_FREE_DISK_MB = 10
COORDINATOR_CONSUMERS = ("coordinator-frame-score-chaos", "coordinator-frame-rejected-chaos")
"""The coordinator's lanes (`coordinator.site_lanes`) of the site's frame messages."""
STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class FleetSpec:
    """How a scenario's fleet differs from the plain one."""

    database: Literal["sqlite", "postgresql"] = "sqlite"
    clock_skew_s: int = 0
    """The site agent's clock against the centre's (libfaketime in its process)."""
    site_disks: tuple[Literal["work", "quarantine", "nats"], ...] = ()
    """Parts of the site's work folder each on a small disk of its own."""
    centre_disk: bool = False
    """The coordinator's SQLite file on a small disk."""


@dataclass
class ChaosFleet:
    """The running parts; the processes are restarted by the faults, never by the suite."""

    root: Path
    spec: FleetSpec
    keys: Path
    hub: EmbeddedNats
    proxy: LinkProxy
    settings: SiteAgentSettings
    database_url: str
    coordinator: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None

    def seed(self, identity: str) -> str:
        return read_seed(self.keys / f"{identity}.nk")

    @property
    def site_url(self) -> str:
        """The site's own leaf server (127.0.0.1, no key: the agent's side of it)."""
        return f"nats://127.0.0.1:{self.settings.nats_port}"

    @property
    def coordinator_log(self) -> Path:
        return self.root / "coordinator.log"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    async def start_coordinator(self, *, wait: bool = True) -> "asyncio.Task[float]":
        """Start `skyfleet coordinator run`; returns a task that ends when it says it started,
        with the seconds that took (awaited here when `wait`)."""
        seen = _occurrences(self.coordinator_log, "coordinator started")
        self.coordinator = start_coordinator_process(
            self.hub.url,
            None,
            self.coordinator_log,
            sites=[SITE_ID],
            database_url=self.database_url,
            nkey_file=self.keys / "coordinator.nk",
        )
        up = asyncio.create_task(
            _logged(self.coordinator_log, "coordinator started", seen, self.coordinator)
        )
        if wait:
            await up
        return up

    async def start_agent(self, *, wait: bool = True) -> "asyncio.Task[float]":
        """Start `skyfleet site run` on the site's folders; returns a task that ends when it
        runs, with the seconds that took (awaited here when `wait`)."""
        seen = _occurrences(self.agent_log, "site agent running")
        self.agent = start_agent_process(self.settings, self.agent_log, env=self._agent_env())
        up = asyncio.create_task(_logged(self.agent_log, "site agent running", seen, self.agent))
        if wait:
            await up
        return up

    def kill_coordinator(self) -> None:
        _kill(self.coordinator)

    def kill_agent(self) -> None:
        _kill(self.agent)

    async def stop_coordinator(self) -> None:
        await asyncio.to_thread(_stop, self.coordinator)

    def site_server_pid(self) -> int:
        """The site's leaf nats-server (a child of the agent)."""
        found = subprocess.run(
            ["pgrep", "-f", f"{self.settings.nats_store_dir}/nats-server.conf"],
            capture_output=True,
            text=True,
        )
        return int(found.stdout.split()[0])

    async def ingest_idle(self, timeout_s: float) -> bool:
        """Whether the coordinator's frame consumers have delivered and had acknowledged every
        message of `FLEET` (asked as the coordinator, whose consumers they are)."""
        nc = await connect(self.hub.url, name="chaos-idle", nkey_seed=self.seed("coordinator"))
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                infos = [await js.consumer_info(FLEET_STREAM, c) for c in COORDINATOR_CONSUMERS]
                if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await nc.close()

    def _agent_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SKYFLEET_SITE_NATS_PORT"] = str(self.settings.nats_port)
        env["SKYFLEET_SITE_MIN_FREE_DISK_MB"] = str(SITE_MIN_FREE_DISK_MB)
        env["SKYFLEET_SITE_INCOMPLETE_TIMEOUT_S"] = "2"
        if self.spec.clock_skew_s:
            env["LD_PRELOAD"] = faketime_library()
            # its monotonic clock moves by the same offset (FAKETIME_DONT_FAKE_MONOTONIC=1 makes
            # libfaketime 0.9.10 fail Python's time.sleep with EINVAL); it runs at real speed
            env["FAKETIME"] = f"{self.spec.clock_skew_s:+d}"
        return env

    async def stop(self) -> None:
        await asyncio.gather(
            asyncio.to_thread(_stop, self.agent), asyncio.to_thread(_stop, self.coordinator)
        )


def faketime_library() -> str:
    """Debian's libfaketime (`apt-get install faketime`), the thread-safe build."""
    found = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
    if not found:
        raise RuntimeError("libfaketime is missing: apt-get install -y faketime")
    return found[0]


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(process)


def _occurrences(log_path: Path, event: str) -> int:
    return log_path.read_text(errors="replace").count(event) if log_path.exists() else 0


async def _logged(
    log_path: Path, event: str, seen: int, process: subprocess.Popen[bytes], timeout_s: float = 120
) -> float:
    """Wait until the log says `event` once more than `seen` times (the process is up); returns
    the seconds waited."""
    started = time.monotonic()
    while _occurrences(log_path, event) <= seen:
        if process.poll() is not None or time.monotonic() > started + timeout_s:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"{log_path.name} never said {event!r}:\n{tail}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database for one scenario, dropped afterwards."""
    name = f"skyfleet_chaos_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _database(stack: ExitStack, root: Path, spec: FleetSpec) -> str:
    if spec.database == "postgresql":
        return stack.enter_context(fresh_postgres())
    folder = root / "centre"
    if spec.centre_disk:
        folder = stack.enter_context(small_disk(folder, CENTRE_DISK_MB))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'coordinator.sqlite3'}"


def _site_disks(stack: ExitStack, work_dir: Path, spec: FleetSpec) -> None:
    """Mount the small disks, the work folder's first (the others are inside it)."""
    for part in sorted(spec.site_disks, key=lambda p: p != "work"):
        mount_point = work_dir if part == "work" else work_dir / part
        stack.enter_context(small_disk(mount_point, SITE_DISK_MB[part]))


@asynccontextmanager
async def chaos_fleet(root: Path, spec: FleetSpec) -> AsyncIterator[ChaosFleet]:
    """A fleet under `root`, running for the block, everything stopped and undone after it."""
    keys = root / "keys"
    issue_credentials(keys, [SITE_ID])
    with ExitStack() as stack:
        hub = stack.enter_context(
            running_hub(root / "hub", authorization_file=keys / "hub-auth.conf")
        )
        leaf_port = int(str(hub.config.leaf_url).rsplit(":", 1)[1])
        proxy = LinkProxy("127.0.0.1", leaf_port).start()
        stack.callback(proxy.stop)
        settings = site_settings(
            root,
            SITE_ID,
            None,
            hub_leaf_url=proxy.leaf_url,
            hub_nkey_file=keys / f"site-{SITE_ID}.nk",
            nats_port=free_port(),
        )
        _site_disks(stack, settings.work_dir, spec)
        fleet = ChaosFleet(root, spec, keys, hub, proxy, settings, _database(stack, root, spec))
        try:
            await asyncio.gather(fleet.start_coordinator(), fleet.start_agent())
            yield fleet
        finally:
            await fleet.stop()

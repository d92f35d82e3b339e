"""A local Triton Inference Server: find the bundled binary, assemble its backends, start, stop.

The binary is the real `tritonserver` (2.51) shipped inside the PyPI package `nvidia-pytriton`,
which bundles only the python backend. `TritonServer` assembles a backend directory from the
package's files, runs the bare binary on loopback ports chosen free at start, loads the named
models explicitly, is ready when `/v2/health/ready` answers 200 from this server (its `--id`)
and every model reports ready, and dies with its parent so a crashed test leaves nothing behind.
"""

import importlib.util
import json
import logging
import os
import sys
import sysconfig
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from fleetbus.process import ServerProcess
from fleetbus.server import free_port

log = logging.getLogger(__name__)


class TritonServerError(RuntimeError):
    """The server is not installed, or did not start or stop as asked."""


class TritonInstall(BaseModel):
    """Where the files of the bundled Triton lie in this environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    binary: Path
    python_backend_files: tuple[Path, ...] = Field(
        description="libtriton_python.so, triton_python_backend_utils.py and the stub"
    )
    library_dirs: tuple[Path, ...] = Field(description="Needed on LD_LIBRARY_PATH, in order.")

    @classmethod
    def find(cls) -> Self:
        """The install inside this interpreter's `nvidia-pytriton`, without importing pytriton."""
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonServerError(
                "tritonserver not found: install the PyPI package 'nvidia-pytriton' "
                "(pip install --no-deps nvidia-pytriton==0.7.0) into this environment"
            )
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        server_dir = package_dir / "tritonserver"
        python_tag = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=server_dir / "bin" / "tritonserver",
            python_backend_files=(
                server_dir / "backends" / "python" / "libtriton_python.so",
                server_dir / "backends" / "python" / "triton_python_backend_utils.py",
                server_dir / "python_backend_stubs" / python_tag / "triton_python_backend_stub",
            ),
            library_dirs=(
                package_dir.parent / "nvidia_pytriton.libs",
                Path(str(sysconfig.get_config_var("LIBDIR"))),
            ),
        )
        missing = [p for p in (install.binary, *install.python_backend_files) if not p.exists()]
        if missing:
            raise TritonServerError(
                f"incomplete nvidia-pytriton install (Python {python_tag}): missing "
                + ", ".join(str(p) for p in missing)
            )
        return install


class TritonServerConfig(BaseModel):
    """Everything needed to run one tritonserver over one model repository."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_repository: Path
    model_names: tuple[str, ...] = Field(min_length=1, description="Loaded at start.")
    work_dir: Path = Field(description="The assembled backend directory and the server log.")
    host: str = "127.0.0.1"
    http_port: int = Field(ge=1, le=65535)
    grpc_port: int = Field(ge=1, le=65535)
    metrics_port: int = Field(ge=1, le=65535)
    server_id: str = Field(default_factory=lambda: f"skyfleet-{uuid.uuid4().hex[:12]}")
    exit_timeout_s: int = Field(default=5, ge=0, description="Wait for in-flight requests.")

    @property
    def grpc_url(self) -> str:
        """The address `tritonclient.grpc` takes: host:port."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def backend_dir(self) -> Path:
        return self.work_dir / "backends"

    def arguments(self) -> list[str]:
        """The tritonserver command-line flags."""
        return [
            f"--id={self.server_id}",
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self.backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in self.model_names),
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={self.exit_timeout_s}",
        ]

    @classmethod
    def on_free_ports(
        cls,
        model_repository: Path,
        work_dir: Path,
        model_names: tuple[str, ...] = ("quality",),
        *,
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
    ) -> Self:
        """A configuration on loopback; each port given as 0 is one that is free now."""
        return cls(
            model_repository=model_repository.resolve(),
            model_names=model_names,
            work_dir=work_dir.resolve(),
            http_port=http_port or free_port(),
            grpc_port=grpc_port or free_port(),
            metrics_port=metrics_port or free_port(),
        )


def _http_json(url: str) -> object | None:
    """The JSON a 200 answer carries, or None for anything else."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            body = response.read()
            return json.loads(body) if body else {}
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


class TritonServer(ServerProcess):
    """One tritonserver process owned by this Python process (see
    `fleetbus.process.ServerProcess`: start, stop, context manager). Starting again after
    `stop()` reuses the same ports and repository, as a restart of a real server would.
    """

    program = "tritonserver"
    error = TritonServerError
    start_timeout_s = 60.0
    stop_timeout_s = 15.0

    def __init__(self, config: TritonServerConfig, *, install: TritonInstall | None = None) -> None:
        super().__init__()
        self.config = config
        self.install = install or TritonInstall.find()

    @property
    def grpc_url(self) -> str:
        return self.config.grpc_url

    @property
    def log_path(self) -> Path:
        return self.config.work_dir / "tritonserver.log"

    def _assemble_backends(self) -> None:
        python_dir = self.config.backend_dir / "python"
        python_dir.mkdir(parents=True, exist_ok=True)
        for source in self.install.python_backend_files:
            link = python_dir / source.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source)

    def prepare(self) -> None:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        self._assemble_backends()

    def command(self) -> list[str]:
        return [str(self.install.binary), *self.config.arguments()]

    def environment(self) -> dict[str, str]:
        """The stub embeds Python: it must find this venv's python3 and this libpython."""
        env = dict(os.environ)
        libraries = [str(d) for d in self.install.library_dirs]
        if env.get("LD_LIBRARY_PATH"):
            libraries.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def describe(self) -> str:
        return (
            f"id={self.config.server_id} grpc={self.config.grpc_url} "
            f"http={self.config.http_url} models={','.join(self.config.model_names)}"
        )

    def is_ready(self) -> bool:
        """The server and every configured model are ready, on ports served by this server."""
        return self._answers_as_itself() and self._all_ready(self.config.http_url)

    def _answers_as_itself(self) -> bool:
        """Whether the HTTP port is served by this server (not another one on that port)."""
        metadata = _http_json(f"{self.config.http_url}/v2")
        return isinstance(metadata, dict) and metadata.get("name") == self.config.server_id

    def _all_ready(self, base: str) -> bool:
        urls = [f"{base}/v2/health/ready"]
        urls += [f"{base}/v2/models/{name}/ready" for name in self.config.model_names]
        return all(_http_json(url) is not None for url in urls)

"""The demo's telescope devices as processes: an `alpaca-simulators` server (mount, filter
wheel, safety monitor, observing conditions) and the sky camera (`skyfleet.sky_camera`), both on
loopback, started and stopped like every other server here (`fleetbus.process.ServerProcess`:
own process group, killed with their parent, ready when their Alpaca API answers)."""

import sys
from pathlib import Path

import requests

from fleetbus.process import ServerProcess
from fleetbus.server import free_port
from protos import SiteLocation

ALPACA_SIMULATORS = Path(sys.executable).parent / "alpaca-simulators"
"""The simulators' command, installed beside this Python."""
READY_PROBE_TIMEOUT_S = 0.5
"""One readiness probe waits this long (the servers answer in milliseconds once up)."""


class AlpacaServerError(RuntimeError):
    """An Alpaca server did not start."""


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=READY_PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


class AlpacaSimulators(ServerProcess):
    """One `alpaca-simulators` server on a free loopback port."""

    program = "alpaca-simulators"
    error = AlpacaServerError
    start_timeout_s = 60.0  # it imports fastapi, astropy and cabaret first: seconds on 2 cores

    def __init__(self, folder: Path, port: int | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.port = port or free_port()

    @property
    def address(self) -> str:
        """host:port, as alpyca's devices take it."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"alpaca-simulators-{self.port}.log"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [str(ALPACA_SIMULATORS), "--host", "127.0.0.1", "--port", str(self.port)]

    def is_ready(self) -> bool:
        return _answers(f"http://{self.address}/api/v1/telescope/0/connected")

    def describe(self) -> str:
        return f"address={self.address}"


class SkyCameraServer(ServerProcess):
    """The sky camera (`skyfleet.sky_camera`) for a mount, on a free loopback port."""

    program = "sky-camera"
    error = AlpacaServerError
    start_timeout_s = 60.0

    def __init__(
        self,
        folder: Path,
        mount_address: str,
        location: SiteLocation,
        *,
        camera_px: int = 512,
        seed: int = 0,
        time_scale: float = 1.0,
        sky_clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.port = free_port()
        self._args = [
            "--port", str(self.port),
            "--mount", mount_address,
            "--lat", str(location.lat_deg),
            "--lon", str(location.lon_deg),
            "--height", str(location.height_m),
            "--camera-px", str(camera_px),
            "--seed", str(seed),
            "--time-scale", str(time_scale),
            "--sky-clock-offset-s", str(sky_clock_offset_s),
        ]  # fmt: skip

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"sky-camera-{self.port}.log"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "skyfleet.sky_camera", *self._args]

    def is_ready(self) -> bool:
        return _answers(f"http://{self.address}/api/v1/camera/0/connected")

    def describe(self) -> str:
        return f"address={self.address}"

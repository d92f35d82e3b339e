"""The telescope's ASCOM Alpaca devices as the follow-up executor uses them (alpyca): the mount,
the camera, the filter wheel and the safety monitor, each call blocking (run them in a thread).

Every failure of a device (absent, not answering within alpyca's 5 s, or answering with an
ASCOM error) comes out as one `DeviceError` whose message names the device and what it said, so
the executor can fail the request with that reason and go on.
"""

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from alpaca import exceptions as alpaca_exceptions
from alpaca.camera import Camera
from alpaca.filterwheel import FilterWheel
from alpaca.safetymonitor import SafetyMonitor
from alpaca.telescope import Telescope
from requests import RequestException

from site_agent.settings import AlpacaDevices

T = TypeVar("T")

ALPACA_ERRORS: tuple[type[Exception], ...] = (
    RequestException,
    ValueError,
    KeyError,
    *(
        cls
        for _, cls in inspect.getmembers(alpaca_exceptions, inspect.isclass)
        if issubclass(cls, Exception)
    ),
)
"""What a device call can raise: the HTTP layer, a malformed answer, or an ASCOM error."""
POLL_S = 0.2
"""How often a slew or a filter move is asked whether it has finished."""
HOURS_PER_DEGREE = 1.0 / 15.0


class DeviceError(Exception):
    """An Alpaca device failed; the message names the device and its error."""


def device_call(device: str, call: Callable[[], T]) -> T:
    """`call()`, with any device failure turned into a `DeviceError` naming `device`."""
    try:
        return call()
    except ALPACA_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DeviceError(f"{device}: {detail}") from exc


class TelescopeRig:
    """The mount, camera, filter wheel and safety monitor of one site."""

    def __init__(self, devices: AlpacaDevices) -> None:
        self.devices = devices
        self.telescope = Telescope(devices.address, devices.telescope)
        self.camera = Camera(devices.camera_address or devices.address, devices.camera)
        self.wheel = (
            FilterWheel(devices.address, devices.filterwheel)
            if devices.filterwheel is not None
            else None
        )
        self.safety = (
            SafetyMonitor(devices.address, devices.safetymonitor)
            if devices.safetymonitor is not None
            else None
        )

    def is_safe(self) -> bool | None:
        """The safety monitor's verdict (None: the site has none)."""
        safety = self.safety
        if safety is None:
            return None
        return bool(device_call("safety monitor", lambda: safety.IsSafe))

    def slew(self, ra_deg: float, dec_deg: float) -> None:
        """Unpark, track and slew to (ra, dec), waiting until the mount has arrived."""
        mount = self.telescope

        def start() -> None:
            if not mount.Connected:
                mount.Connected = True
            if mount.AtPark:
                mount.Unpark()
            mount.Tracking = True
            mount.SlewToCoordinatesAsync(ra_deg * HOURS_PER_DEGREE, dec_deg)

        device_call("telescope", start)
        self._wait("telescope", "slew", lambda: not mount.Slewing)

    def pointing(self) -> tuple[float, float]:
        """Where the mount says it points: (ra, dec) in degrees."""
        mount = self.telescope
        ra_h, dec = device_call("telescope", lambda: (mount.RightAscension, mount.Declination))
        return float(ra_h) * 15.0 % 360.0, float(dec)

    def select_filter(self, wanted: str) -> str:
        """Turn the wheel to the slot for `wanted` (a plan's filter, mapped by the settings'
        `filters`); returns the slot's name. No wheel: the camera's one filter is used."""
        wheel = self.wheel
        if wheel is None:
            return wanted
        name = self.devices.filters.get(wanted, wanted)

        def start() -> int:
            if not wheel.Connected:
                wheel.Connected = True
            names = [str(n) for n in wheel.Names]
            matches = [i for i, n in enumerate(names) if n.lower() == name.lower()]
            if not matches:
                raise ValueError(f"no filter {wanted!r} in the wheel ({', '.join(names)})")
            wheel.Position = matches[0]
            return matches[0]

        slot = device_call("filter wheel", start)
        self._wait("filter wheel", "filter move", lambda: wheel.Position == slot)
        return name

    def start_exposure(self, exptime_s: float) -> None:
        """Open the shutter for `exptime_s` (a light frame)."""
        camera = self.camera

        def start() -> None:
            if not camera.Connected:
                camera.Connected = True
            camera.StartExposure(exptime_s, True)

        device_call("camera", start)

    def image_ready(self) -> bool:
        camera = self.camera
        return bool(device_call("camera", lambda: camera.ImageReady))

    def abort_exposure(self) -> None:
        """Stop the exposure in progress and discard it (AbortExposure, else StopExposure)."""
        camera = self.camera

        def abort() -> None:
            if camera.CanAbortExposure:
                camera.AbortExposure()
            else:
                camera.StopExposure()

        device_call("camera", abort)

    def image(self) -> np.ndarray:
        """The last image as rows of pixels (ASCOM's ImageArray is x-major: transposed)."""
        camera = self.camera
        pixels = device_call("camera", lambda: np.asarray(camera.ImageArray))
        if pixels.ndim != 2:
            raise DeviceError(f"camera: image of {pixels.ndim} dimensions, expected 2")
        return pixels.T

    def _wait(self, device: str, what: str, done: Callable[[], bool]) -> None:
        """Poll `done` until true; a device that takes longer than its timeout has failed."""
        deadline = time.monotonic() + self.devices.slew_timeout_s
        while not device_call(device, done):
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"{device}: {what} not finished after {self.devices.slew_timeout_s:.0f} s"
                )
            time.sleep(POLL_S)

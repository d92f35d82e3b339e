"""The site's weather and safety as its ASCOM Alpaca devices report them (ObservingConditions and
SafetyMonitor), read for each heartbeat (`SiteHeartbeat.conditions`).

A site without devices has no conditions (None). A device that is absent, does not answer or
answers with an error gives None for what it would have reported (both absent: no conditions at
all) and one logged warning per change, never a crash: the heartbeat goes out either way.
"""

import logging
import math
from collections.abc import Callable
from typing import TypeVar

from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor

from protos import SiteConditions
from protos.base import utc_now
from site_agent.alpaca_devices import DeviceError, device_call
from site_agent.settings import AlpacaDevices

log = logging.getLogger(__name__)

T = TypeVar("T")

FIGURES: dict[str, str] = {
    "cloud_cover_pct": "CloudCover",
    "humidity_pct": "Humidity",
    "wind_speed_m_s": "WindSpeed",
    "temperature_c": "Temperature",
    "sky_quality_mag_arcsec2": "SkyQuality",
    "seeing_arcsec": "StarFWHM",
}
"""`SiteConditions` field -> the ObservingConditions property that reports it (ASCOM units:
percent, m/s, °C, mag/arcsec², arcsec)."""


class ConditionsReader:
    """Reads the site's weather devices (blocking: call it in a thread)."""

    def __init__(self, site_id: str, devices: AlpacaDevices) -> None:
        self.site_id = site_id
        self.weather = (
            ObservingConditions(devices.address, devices.observingconditions)
            if devices.observingconditions is not None
            else None
        )
        self.safety = (
            SafetyMonitor(devices.address, devices.safetymonitor)
            if devices.safetymonitor is not None
            else None
        )
        self._failing: str | None = None

    def read(self) -> SiteConditions | None:
        """The conditions now; None when no device answered."""
        problems: list[str] = []
        figures: dict[str, float] = {}
        safe: bool | None = None
        if self.safety is not None:
            monitor = self.safety
            safe = self._value(problems, "safety monitor", lambda: bool(monitor.IsSafe))
        if self.weather is not None:
            weather = self.weather
            for field, name in FIGURES.items():
                value = self._value(
                    problems,
                    f"observing conditions {name}",
                    lambda name=name: float(getattr(weather, name)),  # type: ignore[misc]
                )
                if value is not None and math.isfinite(value):
                    figures[field] = value
        self._report(problems)
        if safe is None and not figures:
            return None
        try:
            return SiteConditions(safe=safe, read_at=utc_now(), **figures)
        except ValueError as exc:  # a figure out of its physical range
            self._report([f"conditions out of range: {str(exc).splitlines()[0]}"])
            return SiteConditions(safe=safe, read_at=utc_now())

    def _value(self, problems: list[str], device: str, call: Callable[[], T]) -> T | None:
        try:
            return device_call(device, call)
        except DeviceError as exc:
            problems.append(str(exc))
            return None

    def _report(self, problems: list[str]) -> None:
        """One warning when the devices start failing (or fail differently), one note when they
        answer again."""
        summary = "; ".join(problems[:3]) if problems else None
        if summary != self._failing:
            if summary is not None:
                log.warning("site conditions unavailable site=%s error=%s", self.site_id, summary)
            else:
                log.info("site conditions readable again site=%s", self.site_id)
        self._failing = summary

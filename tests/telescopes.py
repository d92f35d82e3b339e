"""A telescope for follow-up tests: an `alpaca-simulators` server (mount, filter wheel, safety
monitor, observing conditions) with the sky camera (`skyfleet.sky_camera`) beside it, at a site
where it is night right now; follow-up commands and the statuses that come back."""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests
from nats.js import JetStreamContext

from protos import (
    ExposurePlan,
    FollowUpRequest,
    FollowUpStatus,
    SiteLocation,
    SkyTarget,
    stable_message_id,
)
from protos.base import utc_now
from site_agent.settings import AlpacaDevices
from site_agent.sky_constraints import SiteSky
from skyfleet.alpaca_servers import AlpacaSimulators, SkyCameraServer
from tests.site_topology import stored_messages
from training.simulator.pointing import local_sidereal_time_deg

HORIZON_LIMIT_DEG = 20.0
PIXEL_SCALE_ARCSEC = 0.6
FILTERS = {"r": "Red", "g": "Green"}


def site_at(local_hour: float, lat_deg: float = -30.0) -> SiteLocation:
    """A site where the mean solar time is `local_hour` now (0: midnight, 12: noon)."""
    now = utc_now()
    utc_hour = now.hour + now.minute / 60.0
    lon = ((local_hour - utc_hour) * 15.0 + 180.0) % 360.0 - 180.0
    return SiteLocation(lat_deg=lat_deg, lon_deg=lon, height_m=2400.0)


def night_site() -> SiteLocation:
    """A site in the middle of its night right now."""
    return site_at(0.0)


def overhead_target(site: SiteLocation, name: str = "SN2026fu") -> SkyTarget:
    """A target near the zenith for the next hour, away from the Moon."""
    now = utc_now()
    ra = local_sidereal_time_deg(now + timedelta(minutes=15), site.lon_deg)
    sky = SiteSky(site, HORIZON_LIMIT_DEG)
    for dec in (site.lat_deg, site.lat_deg + 25.0, site.lat_deg - 25.0):
        target = SkyTarget(name=name, ra_deg=ra % 360.0, dec_deg=dec)
        if sky.why_never_observable(target, now, now + timedelta(minutes=1)) is None:
            return target
    raise AssertionError("no target near the zenith clear of the Moon")


@dataclass(frozen=True)
class Telescope:
    """The running devices of one test site."""

    simulators: AlpacaSimulators
    camera: SkyCameraServer
    site: SiteLocation

    def devices(self, **overrides: object) -> AlpacaDevices:
        values: dict[str, object] = {
            "address": self.simulators.address,
            "camera_address": self.camera.address,
            "filters": FILTERS,
            "slew_timeout_s": 60.0,
            "readout_timeout_s": 30.0,
        }
        return AlpacaDevices.model_validate({**values, **overrides})

    def set_safe(self, safe: bool) -> None:
        """What the safety monitor reports (the simulators take it over HTTP)."""
        response = requests.put(
            f"http://{self.simulators.address}/api/v1/safetymonitor/0/issafe",
            data={"IsSafe": str(safe).lower()},
            timeout=5,
        )
        response.raise_for_status()


@contextmanager
def running_telescope(folder: Path, site: SiteLocation) -> Iterator[Telescope]:
    """The simulators and the sky camera for `site`, stopped at the end."""
    with AlpacaSimulators(folder) as simulators:
        camera = SkyCameraServer(folder, simulators.address, site, camera_px=256, seed=5)
        with camera:
            yield Telescope(simulators, camera, site)


def followup_request(
    site_id: str,
    request_id: str,
    target: SkyTarget,
    *,
    count: int,
    exptime_s: float,
    deadline: datetime | None = None,
    variant: str = "",
    filter_name: str = "r",
) -> FollowUpRequest:
    return FollowUpRequest(
        message_id=stable_message_id(FollowUpRequest.KIND, site_id, request_id, variant),
        site_id=site_id,
        request_id=request_id,
        target=target,
        plan=ExposurePlan(filter=filter_name, exptime_s=exptime_s, count=count),
        deadline=deadline or utc_now() + timedelta(hours=2),
        priority=3,
        reason="test follow-up",
    )


async def statuses(js: JetStreamContext, request_id: str) -> list[FollowUpStatus]:
    """The site's reports on a request that reached the hub, in order."""
    return [
        m
        for m in await stored_messages(js)
        if isinstance(m, FollowUpStatus) and m.request_id == request_id
    ]


async def wait_for_status(
    js: JetStreamContext,
    request_id: str,
    accept: Callable[[FollowUpStatus], bool],
    *,
    timeout_s: float,
) -> list[FollowUpStatus]:
    """The reports on a request once one of them satisfies `accept` (or all of them at
    timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await statuses(js, request_id)
        if any(accept(s) for s in found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)

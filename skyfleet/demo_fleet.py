"""The demo fleet on one machine: a hub nats-server, the coordinator with its ops console, and
three simulated sites, each a real site agent with its own leaf-node nats-server, a simulated
survey writing frames into its folder, and a telescope of Alpaca devices (an `alpaca-simulators`
server and the sky camera on loopback, started and stopped here) that the agent drives for
follow-ups.

`DemoFleet.run(stop)` starts everything in order (hub; coordinator, which makes the hub source
the sites and keeps those sources flowing, as in production; agents; telescopes), runs until
`stop` is set, or, in a scripted night (`frames_per_site`), until every site has written its
frames, every frame is in the coordinator's store and no follow-up is still under way (or
`max_duration_s` passed), then stops everything in reverse order and returns a `DemoSummary`.
"""

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from coordinator.store.roles import Role
from coordinator.store.users import add_user
from coordinator.views import FleetSummary
from fleetbus.hub import hub_server_config
from fleetbus.identity import (
    COORDINATOR_SEED_FILE,
    HUB_AUTH_FILE,
    RELEASE_SEED_FILE,
    SEED_SUFFIX,
    FleetIdentities,
    issue_credentials,
)
from fleetbus.process import ServerProcess
from fleetbus.server import EmbeddedNats
from protos.base import utc_now
from site_agent.agent import SiteAgent
from site_agent.executor import RecordBook
from skyfleet.alpaca_servers import AlpacaSimulators, SkyCameraServer
from skyfleet.demo_models import SignedModels, signed_shipped_models
from skyfleet.demo_sites import (
    DEMO_FIELDS,
    DEMO_SITES,
    DEMO_TIME_SCALE,
    DemoSite,
    NightSimulator,
    demo_alpaca_devices,
    demo_site_settings,
    write_site_photometry,
)
from training.simulator import SimCamera

log = logging.getLogger(__name__)

DEMO_FOLLOWUP_WINDOW_H = 0.25
"""The demo's follow-up window: one 15-minute step of the planning grid, so plans start now."""
UNDER_WAY = ("sent", "accepted", "observing", "cancelling")
"""Follow-up states that are not finished yet."""
DEMO_OPERATOR = "operator"
"""The console user the demo makes, so its console's actions work."""


def _port_or_any(port: int) -> int:
    """`port` if it is free on loopback, else 0 (any free port: the console says which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            log.warning("port %d is taken; the console takes a free one", port)
            return 0
    return port


def _sky_offset_s(site: DemoSite) -> float:
    """How far the site's simulated night is from now: its telescope judges the sky then."""
    return (site.night_start - utc_now()).total_seconds()


def _console_operator(coordinator: Coordinator) -> tuple[str, str]:
    """An operator for the demo's console, with a new token each run: (name, token)."""
    assert coordinator.engine is not None
    with coordinator.engine.begin() as conn:
        token = add_user(conn, DEMO_OPERATOR, Role.OPERATOR, utc_now(), replace=True)
    return DEMO_OPERATOR, token


class DemoOptions(BaseModel):
    """How the demo runs."""

    work_dir: Path
    camera_px: int = Field(default=1024, ge=128, le=4096)
    cadence_s: float = Field(default=4.0, gt=0.0, description="Seconds between two frames.")
    frames_per_site: int | None = Field(
        default=None, ge=1, description="A scripted night of this many survey frames; None: live."
    )
    max_duration_s: float = Field(
        default=150.0,
        gt=0.0,
        description="Scripted night limit: 110 s of survey and searching, plus the follow-ups "
        "the telescopes now really carry out (slew, 3 exposures, scoring: ~15 s each).",
    )
    console_port: int = Field(default=0, ge=0, le=65535, description="0: a free port.")


class SiteSummary(BaseModel):
    """One site at the end of the demo, as the site itself counted it."""

    site_id: str
    frames_written: int
    frames_scored: int
    frames_rejected: int
    labels: dict[str, int]
    candidates: int
    followups_observed: int = Field(description="Follow-ups the telescope took exposures for.")
    followup_exposures: int = Field(description="Follow-up exposures taken and written.")
    followups: dict[str, int] = Field(description="The site's follow-ups by state.")


class DemoSummary(BaseModel):
    """What the demo did: per site, and as the coordinator saw the fleet."""

    duration_s: float
    cut_short: bool = Field(
        description="A scripted night stopped at `max_duration_s` before every frame was in the "
        "coordinator's store and every follow-up finished."
    )
    console_url: str | None
    sites: list[SiteSummary]
    coordinator: FleetSummary


class DemoFleet:
    """Everything of the demo; `await run(stop)` once."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.camera = SimCamera(width_px=options.camera_px, height_px=options.camera_px)
        self.coordinator: Coordinator | None = None
        self.agents: dict[str, SiteAgent] = {}
        self.telescopes: dict[str, NightSimulator] = {}
        self.devices: list[ServerProcess] = []
        """Every site's Alpaca servers (simulators, sky camera), while the demo runs."""
        self.followup_books: dict[str, Path] = {}
        self.console_login: tuple[str, str] | None = None
        """The console's operator in this demo, (name, token): its actions work."""
        self._started = time.monotonic()
        self._cut_short = False
        self.models: SignedModels | None = None

    @property
    def credentials_dir(self) -> Path:
        """The demo fleet's keys (`skyfleet fleet credentials`)."""
        return self.options.work_dir / "credentials"

    async def run(
        self, stop: asyncio.Event, on_tick: Callable[["DemoFleet"], None] | None = None
    ) -> DemoSummary:
        """Run the fleet until `stop` (or the end of the scripted night); returns the summary."""
        work = self.options.work_dir
        # identities on, as in a real fleet: each site's link and the coordinator prove who
        # they are, and the hub lets each do only its own part
        issue_credentials(self.credentials_dir, [site.site_id for site in DEMO_SITES])
        self.models = await asyncio.to_thread(
            signed_shipped_models,
            work / "models",
            (self.credentials_dir / RELEASE_SEED_FILE).read_text(),
            FleetIdentities.load(self.credentials_dir).release_public_key or "",
        )
        config = hub_server_config(
            work / "hub", authorization_file=self.credentials_dir / HUB_AUTH_FILE
        )
        hub = await asyncio.to_thread(EmbeddedNats(config).start)
        try:
            return await self._with_hub(hub, stop, on_tick)
        finally:
            await asyncio.to_thread(hub.stop)

    async def _with_hub(
        self,
        hub: EmbeddedNats,
        stop: asyncio.Event,
        on_tick: Callable[["DemoFleet"], None] | None,
    ) -> DemoSummary:
        coordinator = Coordinator(self._coordinator_settings(hub))
        self.coordinator = coordinator
        stop_sites = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            await coordinator.start()
            self.console_login = await asyncio.to_thread(_console_operator, coordinator)
            assert hub.config.leaf_url is not None
            addresses = await asyncio.gather(
                *(asyncio.to_thread(self._start_devices, s, i) for i, s in enumerate(DEMO_SITES))
            )
            for index, site in enumerate(DEMO_SITES):
                settings = demo_site_settings(
                    site.site_id,
                    self.options.work_dir / "sites",
                    hub.config.leaf_url,
                    location=site.location,
                    camera=self.camera,
                    hub_nkey_file=self.credentials_dir / f"site-{site.site_id}{SEED_SUFFIX}",
                    models=self.models,
                    alpaca=demo_alpaca_devices(*addresses[index], _sky_offset_s(site)),
                )
                self.followup_books[site.site_id] = settings.followup_records_dir
                catalogue_dir = write_site_photometry(settings, self.camera)
                agent = SiteAgent(settings)
                self.agents[site.site_id] = agent
                tasks.append(asyncio.create_task(agent.run(stop_sites), name=site.site_id))
                self.telescopes[site.site_id] = NightSimulator(
                    site.site_id,
                    settings.watch_dir,
                    camera=self.camera,
                    cadence_s=self.options.cadence_s,
                    seed=index,
                    start=site.night_start,
                    location=site.location,
                    fields=DEMO_FIELDS,
                    survey_frames=self.options.frames_per_site,
                    catalogue_dir=catalogue_dir,
                )
            await asyncio.gather(*(agent.wait_ready() for agent in self.agents.values()))
            self._started = time.monotonic()
            tasks += [
                asyncio.create_task(telescope.run(stop_sites), name=f"{site_id}-telescope")
                for site_id, telescope in self.telescopes.items()
            ]
            await self._until_done(stop, on_tick)
            return self.summary()
        finally:
            stop_sites.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(asyncio.to_thread(d.stop) for d in self.devices))
            await coordinator.stop()

    def _start_devices(self, site: DemoSite, index: int) -> tuple[str, str]:
        """Start a site's telescope: the simulators, then the sky camera reading their mount;
        returns their addresses."""
        folder = self.options.work_dir / "telescopes" / site.site_id
        simulators = AlpacaSimulators(folder)
        self.devices.append(simulators)
        simulators.start()
        camera = SkyCameraServer(
            folder,
            simulators.address,
            site.location,
            camera_px=self.options.camera_px,
            seed=index,
            time_scale=DEMO_TIME_SCALE,
            sky_clock_offset_s=_sky_offset_s(site),
        )
        self.devices.append(camera)
        camera.start()
        return simulators.address, camera.address

    def followups_at(self, site_id: str) -> tuple[int, int, dict[str, int]]:
        """A site's follow-ups as its records say: (observed, exposures taken, by state)."""
        folder = self.followup_books.get(site_id)
        records = RecordBook(folder).records.values() if folder else []
        by_state = Counter(r.state.value for r in records)
        observed = sum(r.exposures_done > 0 for r in records)
        return observed, sum(r.exposures_done for r in records), dict(by_state)

    def _coordinator_settings(self, hub: EmbeddedNats) -> CoordinatorSettings:
        return CoordinatorSettings(
            nats_url=hub.url,
            nkey_file=self.credentials_dir / COORDINATOR_SEED_FILE,
            database_url=f"sqlite:///{(self.options.work_dir / 'coordinator.sqlite3').absolute()}",
            http_port=_port_or_any(self.options.console_port),
            sites=[site.site_id for site in DEMO_SITES],
            plan_interval_s=2.0,
            heartbeat_stale_s=30.0,
            sky_clock_offsets_s={site.site_id: _sky_offset_s(site) for site in DEMO_SITES},
            # a scripted night lasts minutes: follow-ups are planned for now, within a quarter
            # of an hour (one step of the planning grid), not for the best hour of a day
            followup_window_h=DEMO_FOLLOWUP_WINDOW_H,
        )

    async def _until_done(
        self, stop: asyncio.Event, on_tick: Callable[["DemoFleet"], None] | None
    ) -> None:
        while not stop.is_set():
            if on_tick is not None:
                on_tick(self)
            if self._scripted_night_over():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def _scripted_night_over(self) -> bool:
        frames = self.options.frames_per_site
        if frames is None:
            return False
        if time.monotonic() - self._started > self.options.max_duration_s:
            log.warning("scripted night cut short after %.0f s", self.options.max_duration_s)
            self._cut_short = True
            return True
        written = sum(t.frames_written for t in self.telescopes.values())
        if any(t.survey_written < frames for t in self.telescopes.values()):
            return False
        candidates = 0
        for site_id, telescope in self.telescopes.items():
            status = self.agents[site_id].status()
            if status.frames_scored + status.frames_rejected < telescope.frames_written:
                return False
            if status.frames_searched < status.frames_scored:  # searches follow the scores
                return False
            candidates += status.candidates
        assert self.coordinator is not None
        fleet = self.coordinator.summary()
        if fleet.frames + fleet.rejected < written or fleet.candidates < candidates:
            return False
        return not any(fleet.followups.get(state, 0) for state in UNDER_WAY)

    def summary(self) -> DemoSummary:
        """The fleet as it stands now."""
        assert self.coordinator is not None
        fleet = self.coordinator.summary()
        followups = {site_id: self.followups_at(site_id) for site_id in self.agents}
        return DemoSummary(
            duration_s=round(time.monotonic() - self._started, 1),
            cut_short=self._cut_short,
            console_url=self.coordinator.console_url,
            sites=[
                SiteSummary(
                    site_id=site_id,
                    frames_written=self.telescopes[site_id].frames_written + followups[site_id][1],
                    frames_scored=status.frames_scored,
                    frames_rejected=status.frames_rejected,
                    labels=status.labels,
                    candidates=status.candidates,
                    followups_observed=followups[site_id][0],
                    followup_exposures=followups[site_id][1],
                    followups=followups[site_id][2],
                )
                for site_id, agent in self.agents.items()
                if (status := agent.status())
            ],
            coordinator=fleet,
        )

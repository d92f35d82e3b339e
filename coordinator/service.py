"""The coordinator service: the hub's streams and their sources, store, ingest consumers,
follow-up dispatcher, health watch and the console, started and stopped together. Every loop
runs supervised: one that crashes is logged, counted in `restarts` and started again.
Embeddable: `Coordinator` (start/stop) or `run_coordinator(settings, stop)`."""

import asyncio
import contextlib
import gc
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import uvicorn
from nats.aio.client import Client
from sqlalchemy import Engine

from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.scheduling.dispatcher import Dispatcher
from coordinator.scheduling.sky import configure_offline_iers
from coordinator.settings import CoordinatorSettings
from coordinator.site_lanes import kind_lanes
from coordinator.store.engine import open_engine
from coordinator.store.migrations import upgrade_to_head
from coordinator.summary import fleet_summary
from coordinator.views import FleetSummary, SiteStatus
from fleetbus.client import connect
from fleetbus.hub import ensure_hub_streams, keep_sources_flowing
from fleetbus.identity import read_seed
from fleetbus.tasks import cancel_and_wait, supervise

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 2.0
STARTUP_CANCEL_S = 10.0
"""How long a start cut short by `stop` may take to end (it may be inside a NATS request)."""


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the host application owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def open_store(database_url: str) -> Engine:
    """Open the database and bring its schema up to date."""
    engine = open_engine(database_url)
    upgrade_to_head(engine)
    return engine


def freeze_startup_heap() -> None:
    """Take everything alive after start-up (modules, engine, app) out of the garbage
    collector's scans. Ingest allocates fast enough to trigger full collections, and walking
    the start-up heap each time cost ingest half of its rate."""
    gc.collect()
    gc.freeze()


class Coordinator:
    """The running coordinator. `await start()`, then `await stop()` (in `try/finally`)."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        """How often each loop crashed and was started again."""
        self.engine: Engine | None = None
        self.console_url: str | None = None
        self._nc: Client | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        """Loops that end when `_stop` is set."""
        self._keeper: asyncio.Task[None] | None = None
        """The hub's source keeper, which runs until cancelled."""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="coordinator-store")
        self._planner = ThreadPoolExecutor(1, thread_name_prefix="coordinator-planner")
        self._server: EmbeddedServer | None = None
        self._site_status: dict[str, SiteStatus] = {}

    async def start(self) -> None:
        """Open the store, connect to NATS, start ingest, dispatch, health watch and console."""
        configure_offline_iers()
        self.engine = await asyncio.to_thread(open_store, self.settings.database_url)
        seed = None if self.settings.nkey_file is None else read_seed(self.settings.nkey_file)
        self._nc = await connect(
            self.settings.nats_url,
            name="skyfleet-coordinator",
            nkey_seed=seed,
            tls_ca_file=self.settings.tls_ca_file,
        )
        js = self._nc.jetstream()
        if self.settings.ensure_streams:
            await ensure_hub_streams(js, self.settings.sites)
        if self.settings.keep_sources_flowing:
            self._keeper = asyncio.create_task(
                supervise(
                    "sources", partial(keep_sources_flowing, self._nc), on_restart=self._restarted
                )
            )
        writer = StoreWriter(
            self.engine,
            self._writer,
            match_radius_arcsec=self.settings.match_radius_arcsec,
            moving_radius_arcsec=self.settings.moving_link_radius_arcsec,
        )
        consumers = kind_lanes(self._nc, writer, self.settings, self.counts)
        dispatcher = Dispatcher(js, self.engine, self.settings, self._planner)
        for consumer in consumers:
            self._spawn(f"ingest-{consumer.kind}", partial(consumer.run, self._stop))
        self._spawn("dispatcher", partial(dispatcher.run, self._stop))
        self._spawn("health", self._watch_health)
        if self.settings.serve_console:
            await self._start_console()
        freeze_startup_heap()
        log.info(
            "coordinator started nats=%s database=%s console=%s",
            self.settings.nats_url,
            self.engine.url.render_as_string(hide_password=True),
            self.console_url,
        )

    async def _start_console(self) -> None:
        assert self.engine is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.http_host, self.settings.http_port))
        host, port = sock.getsockname()[:2]
        # proxy_headers off: uvicorn would otherwise take the client's address from
        # X-Forwarded-For when the peer is 127.0.0.1, and the console's access rules (loopback
        # reads, trusted proxies) must see the peer that actually connected.
        config = uvicorn.Config(
            create_console(self.engine, self.settings, self.counts),
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
        )
        server = EmbeddedServer(config)
        self._server = server
        self._spawn("console", partial(server.serve, sockets=[sock]))
        self.console_url = f"http://{host}:{port}"

    def _spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one of the coordinator's loops, supervised."""
        task = asyncio.create_task(supervise(name, loop, on_restart=self._restarted), name=name)
        self._tasks.append(task)

    def _restarted(self, name: str, error: BaseException) -> None:
        self.restarts[name] += 1

    async def _watch_health(self) -> None:
        """Log an alert each time a site changes status (offline, weather, back online)."""
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                for site in (await asyncio.to_thread(self.summary)).sites:
                    before = self._site_status.get(site.site_id)
                    if before is not None and before != site.status:
                        log.warning(
                            "site alert site=%s status=%s was=%s alerts=%s",
                            site.site_id,
                            site.status.value,
                            before.value,
                            "; ".join(site.alerts) or "-",
                        )
                    self._site_status[site.site_id] = site.status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=HEALTH_INTERVAL_S)

    def summary(self) -> FleetSummary:
        """The fleet summary now."""
        if self.engine is None:
            raise RuntimeError("the coordinator is not started")
        return fleet_summary(self.engine, self.settings)

    async def stop(self) -> None:
        """Stop every loop, close the bus connection and the store."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._keeper is not None:
            await cancel_and_wait([self._keeper], timeout_s=STARTUP_CANCEL_S)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._writer.shutdown(wait=True)
        self._planner.shutdown(wait=True)
        if self.engine is not None:
            self.engine.dispose()
        log.info("coordinator stopped ingested=%s", dict(self.counts))


async def run_coordinator(settings: CoordinatorSettings, stop: asyncio.Event) -> None:
    """Run the coordinator until `stop` is set (also while it is still starting, e.g. waiting
    for NATS)."""
    coordinator = Coordinator(settings)
    starting = asyncio.create_task(coordinator.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            await stopping
        else:
            log.warning("coordinator stopped while starting (is NATS at %s up?)", settings.nats_url)
    finally:
        await cancel_and_wait({starting, stopping}, timeout_s=STARTUP_CANCEL_S)
        await coordinator.stop()

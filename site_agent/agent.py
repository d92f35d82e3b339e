"""The site agent service: watch the folder, score each frame once, publish everything, stay up.

`SiteAgent.run(stop)` wires the parts together and runs until `stop` is set:
- an embedded leaf-node nats-server for the site (unless `nats_url` points at one), supervised:
  restarted when it dies or when its store failed and the disk has room again,
- the folder watch feeding a bounded queue (a full queue makes intake wait: back-pressure;
  the folder itself is the buffer, so nothing is dropped),
- one worker taking frames through the pipeline (read → score → publish → settle),
- the search lane, searching settled frames for transients off that path (its backlog is on
  disk) and publishing candidates and `FrameSearched`,
- heartbeats with a link probe, the command consumer and the `/metrics` endpoint.
Every loop runs supervised (`fleetbus.tasks.supervise`): one that crashes is logged, counted in
the heartbeat's `restarts` and started again. A frame whose processing fails unexpectedly is
logged, counted, and tried again after a back-off (`FolderWatch.retry`); it never stops the worker.
On stop it takes no new frames, finishes the frame in hand, and closes everything in order.
Frames still queued are found again at the next start (they are not settled yet).
The parts are built from the settings in `site_agent.agent_parts` (the quality predictor
included); this module starts them, runs them and stops them.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

from nats.aio.client import Client

from fleetbus.client import connect_unless_stopped
from fleetbus.identity import read_seed
from fleetbus.process_supervisor import ProcessSupervisor
from fleetbus.server import EmbeddedNats
from fleetbus.tasks import cancel_and_wait, supervise
from imaging.file_names import printable_name
from imaging.photometry import PhotometricCalibration
from imaging.scoring import QualityPredictor
from protos import LinkState, SiteConfig
from site_agent.agent_parts import (
    frame_pipeline,
    load_predictor,
    load_searcher,
    search_parts,
    site_config,
)
from site_agent.agent_status import AgentStatus, PublishedCounts
from site_agent.alpaca_executor import FollowUpExecutor, build_executor
from site_agent.commands import CommandReceiver
from site_agent.heartbeat import build_heartbeat, disk_free_bytes
from site_agent.ingest import FolderWatch
from site_agent.learning import SiteLearning
from site_agent.pipeline import FramePipeline, FrameWork
from site_agent.publisher import SitePublisher
from site_agent.search_backlog import SearchBacklog
from site_agent.settings import SiteAgentSettings
from site_agent.site_nats import StoreFaultCheck, site_server_config, start_embedded_server
from site_agent.state import FileFingerprint, ProcessedFrames
from site_agent.telemetry import AgentMetrics
from site_agent.transient_stage import SearchLane, TransientSearcher

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 30.0
EXIT_DEADLINE_S = 3 * SHUTDOWN_GRACE_S + 30.0
"""After a stop is asked for, the process ends by this time whatever is still running (the
frame in hand, the other tasks and the bus each get a grace period first)."""


class SiteAgent:
    """One telescope's agent. Build it with settings, then `await agent.run(stop_event)`."""

    def __init__(
        self, settings: SiteAgentSettings, *, predictor: QualityPredictor | None = None
    ) -> None:
        self.settings = settings
        self.photometry = (
            PhotometricCalibration.load(settings.photometry_file)
            if settings.photometry_file is not None
            else None
        )
        self.metrics = AgentMetrics(settings.site_id)
        self.nats_url: str | None = settings.nats_url
        self.metrics_port: int | None = None
        self._predictor = predictor
        self._boot_id = uuid.uuid4().hex
        self._started_s = time.monotonic()
        self._published = PublishedCounts()
        self._queue: asyncio.Queue[FrameWork] = asyncio.Queue(maxsize=settings.queue_size)
        self._watch = FolderWatch(
            settings.watch_dir,
            settle_s=settings.settle_s,
            incomplete_timeout_s=settings.incomplete_timeout_s,
            polling=settings.polling,
        )
        self._in_hand: asyncio.Task[FrameWork] | None = None
        self._publisher: SitePublisher | None = None
        self._ready = asyncio.Event()
        self.learning = SiteLearning(settings, self.metrics)
        self._lane: SearchLane | None = None
        self._server: EmbeddedNats | None = None
        self.restarts: Counter[str] = Counter()
        """Parts of the agent that failed and were started again, by name."""
        self.failed_frames = 0

    def status(self) -> AgentStatus:
        """Counts and state right now."""
        published = self._published
        return AgentStatus(
            site_id=self.settings.site_id,
            frames_scored=sum(published.labels.values()),
            frames_rejected=published.rejected,
            labels=dict(published.labels),
            last_frame_at=published.last_frame_at,
            queue_depth=self._queue_depth(),
            link_state=self._publisher.link_state if self._publisher else LinkState.UNKNOWN,
            candidates=published.candidates,
            frames_searched=published.searched,
        )

    @property
    def nats_server(self) -> EmbeddedNats | None:
        """The site's own nats-server while the agent runs one (None with `nats_url`)."""
        return self._server

    async def wait_ready(self) -> None:
        """Wait until the agent watches its folder and can publish."""
        await self._ready.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down gracefully."""
        settings = self.settings
        for folder in (settings.work_dir, settings.watch_dir, settings.quarantine_dir):
            folder.mkdir(parents=True, exist_ok=True)
        predictor = self._predictor
        if predictor is None:
            predictor = await asyncio.to_thread(load_predictor, settings)
        predictor = self.learning.serve(predictor)
        _check_disk_space(settings)
        server = await asyncio.to_thread(self._start_server)
        self._server = server
        watcher = (
            asyncio.create_task(self._supervise_server(server), name="nats-server-supervisor")
            if server is not None
            else None
        )
        try:
            assert self.nats_url is not None
            name = f"site-agent-{settings.site_id}"
            nc = await connect_unless_stopped(self.nats_url, name=name, stop=stop)
            if nc is None:
                log.warning(
                    "site agent stopped before its bus answered site=%s url=%s",
                    settings.site_id,
                    self.nats_url,
                )
                return
            try:
                await self._serve(nc, predictor, stop)
            finally:
                with contextlib.suppress(Exception):  # closing during an outage can raise
                    await nc.close()
        finally:
            if watcher is not None:
                await cancel_and_wait([watcher], timeout_s=SHUTDOWN_GRACE_S)
            if server is not None:
                await asyncio.to_thread(server.stop)
        log.info("site agent stopped site=%s", settings.site_id)

    def _start_server(self) -> EmbeddedNats | None:
        if self.settings.nats_url is not None:
            return None
        config = site_server_config(
            self.settings.site_id,
            self.settings.nats_store_dir.absolute(),
            hub_leaf_url=self.settings.hub_leaf_url,
            port=self.settings.nats_port,
            monitor_port=self.settings.nats_monitor_port,
            leaf_nkey_seed=(
                read_seed(self.settings.hub_nkey_file) if self.settings.hub_nkey_file else None
            ),
            hub_ca_file=self.settings.hub_ca_file,
        )
        server = start_embedded_server(config)
        self.nats_url = server.url
        return server

    async def _supervise_server(self, server: EmbeddedNats) -> None:
        """Keep the site's own nats-server running (see `ProcessSupervisor`, `StoreFaultCheck`)."""
        fault = StoreFaultCheck(server, min_free_bytes=int(self.settings.min_free_disk_mb * 1e6))
        await ProcessSupervisor(
            server, name="nats-server", fault=fault, on_restart=self._restarted
        ).run()

    def _restarted(self, component: str, error: object) -> None:
        self.restarts[component] += 1
        self.metrics.restarted(component)

    def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(supervise(name, loop, on_restart=self._restarted), name=name)

    async def _serve(self, nc: Client, predictor: QualityPredictor, stop: asyncio.Event) -> None:
        """Build the parts that need the bus, start the loops, and stop them once `stop` is set."""
        settings = self.settings
        publisher = await self._publisher_for(nc)
        followups = build_executor(settings, publisher.send)
        searcher = await asyncio.to_thread(load_searcher, settings)
        if settings.metrics_port:
            self.metrics_port = self.metrics.serve(settings.metrics_port, settings.metrics_host)
        with (
            ProcessedFrames(settings.state_path) as state,
            contextlib.closing(
                SearchBacklog(settings.search_backlog_path, settings.search_backlog)
            ) as backlog,
        ):
            keeper, lane = search_parts(searcher, backlog, publisher.send, self._published.count)
            self._lane = lane
            pipeline = frame_pipeline(
                settings,
                predictor=predictor,
                publisher=publisher,
                state=state,
                metrics=self.metrics,
                photometry=self.photometry,
                followups=followups,
                lane=lane,
                on_settled=self.learning.observing(self._published.count),
                sampler=self.learning.sampler,
            )
            commands = CommandReceiver(
                nc,
                settings.site_id,
                send=publisher.send,
                count=self.metrics.command,
                hub_js_domain=settings.hub_js_domain,
                executor=followups,
                on_release=self.learning.submit,
            )
            self._watch.start()
            tasks = [
                self._supervised("intake", partial(self._intake, state)),
                self._supervised("heartbeat", partial(self._heartbeats, publisher, followups)),
                self._supervised("followups", followups.run),
                self._supervised("commands", commands.run),
                self._supervised("learning", partial(self.learning.run, nc)),
            ]
            if keeper is not None and lane is not None:
                tasks.append(self._supervised("references", keeper.run))
                tasks.append(self._supervised("search", lane.run))
            worker = self._supervised("worker", partial(self._work, pipeline))
            self._ready.set()
            log.info(
                "site agent running site=%s watch=%s nats=%s",
                settings.site_id,
                settings.watch_dir,
                self.nats_url,
            )
            try:
                await stop.wait()
            finally:
                await self._stop_serving(worker, tasks, searcher)

    async def _publisher_for(self, nc: Client) -> SitePublisher:
        """The site's publisher, ready, having sent the site's description (when configured)."""
        settings = self.settings
        publisher = SitePublisher(
            nc,
            settings.site_id,
            hub_js_domain=settings.hub_js_domain,
            ack_timeout_s=settings.publish_timeout_s,
        )
        await publisher.prepare()
        self._publisher = publisher
        description = self.site_config()
        if description is not None:
            await publisher.send(description)
        return publisher

    async def _stop_serving(
        self,
        worker: asyncio.Task[None],
        tasks: list[asyncio.Task[None]],
        searcher: TransientSearcher | None,
    ) -> None:
        """Take no new frames, finish the frame in hand, then stop the other loops."""
        settings = self.settings
        log.info("site agent stopping site=%s", settings.site_id)
        await self._watch.stop()
        await self._finish(worker)
        stuck = await cancel_and_wait(tasks, timeout_s=SHUTDOWN_GRACE_S)
        if stuck:  # the process exits anyway: see EXIT_DEADLINE_S
            names = sorted(task.get_name() for task in stuck)
            log.error("tasks did not stop site=%s tasks=%s", settings.site_id, names)
        if searcher is not None:  # a search cut off is redone after the restart
            searcher.worker.stop()
        self.metrics.stop_serving()

    async def _intake(self, state: ProcessedFrames) -> None:
        while True:
            path, complete_at_s = await self._watch.next_ready()
            try:
                fingerprint = FileFingerprint.of(path)
            except OSError:
                continue  # gone again before we got to it
            if state.is_settled(fingerprint):
                continue
            await self._queue.put(FrameWork(path, fingerprint, complete_at_s))
            self.metrics.queue_depth.set(self._queue_depth())

    async def _work(self, pipeline: FramePipeline) -> None:
        while True:
            work = await self._queue.get()
            self._in_hand = asyncio.create_task(pipeline.process(work))
            try:
                await asyncio.shield(self._in_hand)
            except Exception:  # the frame's own failure: the worker goes on with the next
                self._frame_failed(work)
            else:
                self._watch.succeeded(work.path)
            self._in_hand = None
            self.metrics.queue_depth.set(self._queue_depth())

    def _frame_failed(self, work: FrameWork) -> None:
        """A frame that failed outside the pipeline's own handling (the state store could not
        be written on a full disk...) is tried again later (`FolderWatch.retry`)."""
        retry_in_s = self._watch.retry(work.path)
        log.exception(
            "frame failed, will be tried again site=%s file=%s in_s=%.0f",
            self.settings.site_id,
            printable_name(work.path),
            retry_in_s,
        )
        self.failed_frames += 1
        self.metrics.frame_failed()

    async def _finish(self, worker: asyncio.Task[None]) -> None:
        """Stop the worker, letting the frame in hand finish (within a grace period)."""
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        in_hand = self._in_hand
        if in_hand is not None and not in_hand.done():
            log.info("finishing the frame in hand site=%s", self.settings.site_id)
            try:
                await asyncio.wait_for(in_hand, SHUTDOWN_GRACE_S)
            except TimeoutError:
                log.error("frame in hand not finished site=%s", self.settings.site_id)

    async def _heartbeats(self, publisher: SitePublisher, followups: FollowUpExecutor) -> None:
        sequence = 0
        while True:
            link = await publisher.probe_link()
            self.metrics.link(link)
            status = self.status()
            beat = build_heartbeat(
                self.settings.site_id,
                boot_id=self._boot_id,
                sequence=sequence,
                model_version=self.learning.version,
                queue_depths={
                    "folder": self._watch.waiting,
                    "scoring": self._queue.qsize(),
                    "search": len(self._lane.backlog) if self._lane else 0,
                },
                frames_scored=status.frames_scored,
                frames_rejected=status.frames_rejected,
                last_frame_at=status.last_frame_at,
                disk_free=disk_free_bytes(self.settings.work_dir),
                link_state=link,
                uptime_s=time.monotonic() - self._started_s,
                restarts=dict(self.restarts),
                failed_frames=self.failed_frames,
                conditions=await followups.conditions(),
            )
            await publisher.send(beat)
            sequence += 1
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    def site_config(self) -> SiteConfig | None:
        """The site's description for the fleet, when its location and camera are configured."""
        return site_config(self.settings)

    def _queue_depth(self) -> int:
        in_hand = int(self._in_hand is not None and not self._in_hand.done())
        return self._watch.waiting + self._queue.qsize() + in_hand


def _check_disk_space(settings: SiteAgentSettings) -> None:
    """Say at start, in one line, when the work folder's disk is already below the site's
    minimum: the agent runs, but frames will wait in the folder until space is freed."""
    free = disk_free_bytes(settings.work_dir)
    if free < settings.min_free_disk_mb * 1e6:
        log.error(
            "disk nearly full: frames wait in the folder until space is freed "
            "site=%s work_dir=%s free_mb=%.0f needed_mb=%.0f",
            settings.site_id,
            settings.work_dir,
            free / 1e6,
            settings.min_free_disk_mb,
        )

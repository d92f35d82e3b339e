"""The agent's Prometheus metrics and the `/metrics` endpoint that serves them.

Each agent owns its own registry (no global state), so several agents can live in one
process (the demo) and tests see only their own counts.
"""

import logging
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from protos import LinkState

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class AgentMetrics:
    """Counters, a latency histogram and gauges for one site agent."""

    def __init__(self, site_id: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"site": site_id}
        self.frames_scored = Counter(
            "skyfleet_site_frames_scored",
            "Frames scored and acknowledged by JetStream, by quality label.",
            ["site", "label"],
            registry=self.registry,
        )
        self.frames_rejected = Counter(
            "skyfleet_site_frames_rejected",
            "Files quarantined, by reason.",
            ["site", "reason"],
            registry=self.registry,
        )
        self.commands = Counter(
            "skyfleet_site_commands",
            "Commands received from the centre, by kind and outcome.",
            ["site", "kind", "outcome"],
            registry=self.registry,
        )
        self.latency_s = Histogram(
            "skyfleet_site_frame_latency_seconds",
            "From a complete file in the folder to the JetStream acknowledgement of its message.",
            ["site"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        ).labels(**labels)
        self.restarts = Counter(
            "skyfleet_site_restarts",
            "Parts of the agent (its nats-server, its loops) that failed and were started again.",
            ["site", "component"],
            registry=self.registry,
        )
        self.frames_failed = Counter(
            "skyfleet_site_frames_failed",
            "Frames whose processing failed unexpectedly (each is tried again later).",
            ["site"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "skyfleet_site_queue_depth",
            "Frames waiting: seen in the folder or queued for scoring.",
            ["site"],
            registry=self.registry,
        ).labels(**labels)
        self.link_up = Gauge(
            "skyfleet_site_link_up",
            "1 when the site's bus reaches the central server, 0 when not, -1 unknown.",
            ["site"],
            registry=self.registry,
        ).labels(**labels)
        self._site_id = site_id
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def restarted(self, component: str) -> None:
        self.restarts.labels(site=self._site_id, component=component).inc()

    def frame_failed(self) -> None:
        self.frames_failed.labels(site=self._site_id).inc()

    def scored(self, label: str, latency_s: float) -> None:
        self.frames_scored.labels(site=self._site_id, label=label).inc()
        self.latency_s.observe(latency_s)

    def rejected(self, reason: str) -> None:
        self.frames_rejected.labels(site=self._site_id, reason=reason).inc()

    def command(self, kind: str, outcome: str) -> None:
        self.commands.labels(site=self._site_id, kind=kind, outcome=outcome).inc()

    def link(self, state: LinkState) -> None:
        self.link_up.set({LinkState.UP: 1, LinkState.DOWN: 0}.get(state, -1))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve `/metrics` over HTTP on a background thread; returns the port (0: a free one)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        log.info("metrics endpoint url=http://%s:%d/metrics", host, bound)
        return bound

    def stop_serving(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = self._thread = None

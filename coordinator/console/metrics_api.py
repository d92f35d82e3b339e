"""The coordinator's Prometheus metrics (`GET /metrics`): what its ingest stored, refused and held
back, by kind and by site, for the fleet's monitoring to alert on.

The counts are the coordinator's own (`Coordinator.counts`, written by the ingest lanes), read
at scrape time, so nothing is kept twice. Access is the console's: a viewer's Bearer token (what
a Prometheus scrape config carries) or a loopback client where `loopback_reads` is on.
"""

from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from coordinator.console.access import Access

RATE_LIMITED = "rate-limited"
"""The ingest's count of rounds a site's lane waited for its rate (`coordinator.site_rates`)."""
SITE_SEPARATOR = ":"
"""Per-site counts are kept as `<count>:<site>`."""
PROBLEM_COUNTS = {
    "dead-lettered": "messages refused and moved to the dead-letter stream",
    "ingest-errors": "ingest rounds that failed and were retried",
}


class IngestCollector(Collector):
    """Turns the ingest's counts into Prometheus counters at each scrape."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = dict(self.counts)
        stored = CounterMetricFamily(
            "skyfleet_coordinator_ingested", "Messages stored, by kind", labels=["kind"]
        )
        limited = CounterMetricFamily(
            "skyfleet_coordinator_rate_limited",
            "Rounds a site's ingest lane waited for its rate (a flood held back)",
            labels=["site"],
        )
        for name, value in sorted(counts.items()):
            if name.startswith(RATE_LIMITED + SITE_SEPARATOR):
                limited.add_metric([name.split(SITE_SEPARATOR, 1)[1]], value)
            elif name != RATE_LIMITED and name not in PROBLEM_COUNTS:
                stored.add_metric([name], value)
        yield stored
        yield limited
        for name, help_text in PROBLEM_COUNTS.items():
            metric = "skyfleet_coordinator_" + name.replace("-", "_")
            yield CounterMetricFamily(metric, help_text, value=counts.get(name, 0))


def metrics_api(counts: Counter[str], access: Access) -> APIRouter:
    """`GET /metrics` in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(counts))
    api = APIRouter(dependencies=[Depends(access.reader)])

    @api.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return api

"""The coordinator's `/metrics`: Prometheus counters of what the ingest stored, dead-lettered
and held back per site, readable with a viewer's token (a scrape config) and by no one else."""

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coordinator.console.app import create_console
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from tests.coordinators import add_console_user

ELSEWHERE = "192.0.2.10"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_stored_refused_and_held_back_messages_per_site(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'metrics.sqlite3'}")
    token = add_console_user(engine, "prometheus", "viewer")
    counts: Counter[str] = Counter()
    app = create_console(engine, CoordinatorSettings(), counts)
    transport = httpx.ASGITransport(app=app, client=(ELSEWHERE, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        assert (await http.get("/metrics")).status_code == 401
        counts.update({"frame-score": 120, "heartbeat": 7, "dead-lettered": 2})
        counts.update({"rate-limited": 3, "rate-limited:flood": 3})
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    found = samples(response.text)
    assert found[("skyfleet_coordinator_ingested_total", (("kind", "frame-score"),))] == 120
    assert found[("skyfleet_coordinator_ingested_total", (("kind", "heartbeat"),))] == 7
    assert found[("skyfleet_coordinator_rate_limited_total", (("site", "flood"),))] == 3
    assert found[("skyfleet_coordinator_dead_lettered_total", ())] == 2
    assert found[("skyfleet_coordinator_ingest_errors_total", ())] == 0
    ingested_kinds = {labels for name, labels in found if name.endswith("ingested_total")}
    assert ingested_kinds == {(("kind", "frame-score"),), (("kind", "heartbeat"),)}
    engine.dispose()

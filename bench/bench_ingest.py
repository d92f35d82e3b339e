"""Coordinator ingest throughput and latency on a real nats-server.

Measures, in the same run: the raw nats-py rate (fetch + decode + ack, nothing stored), the
coordinator's sustained FrameScore ingest into SQLite and into PostgreSQL (if reachable), and
the end-to-end latency from publishing a score to seeing it in the console API.
Run: `python -m bench ingest` (knobs, `bench.settings`: SKYFLEET_BENCH_INGEST_MESSAGES, 20,000
unless set; SKYFLEET_BENCH_POSTGRES_URL, the PostgreSQL admin database).
"""

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from bench.settings import BenchSettings
from coordinator.ingest import KindConsumer, StoreWriter
from coordinator.service import Coordinator, freeze_startup_heap, open_store
from coordinator.settings import CoordinatorSettings
from fleetbus.client import MSG_ID_HEADER, connect, decode
from fleetbus.server import EmbeddedNats, NatsServerConfig
from fleetbus.streams import ensure_streams
from protos import (
    ClassProbabilities,
    FrameIdentity,
    FrameScore,
    ImageMetrics,
    ModelRef,
    QualityLabel,
    stable_message_id,
)
from protos.base import utc_now
from protos.streams import FLEET_STREAM, central_streams
from protos.subjects import subject_for

LATENCY_RATE_HZ = 500
LATENCY_SECONDS = 4.0
SITES = ("la-silla", "paranal", "teide")


def score_payloads(count: int, first: int = 0) -> list[tuple[str, str, bytes]]:
    """(subject, message id, JSON) of `count` distinct, valid frame scores from number `first`."""
    payloads = []
    for i in range(first, first + count):
        site = SITES[i % len(SITES)]
        digest = f"{i:064x}"
        score = FrameScore(
            message_id=stable_message_id(FrameScore.KIND, site, digest),
            site_id=site,
            frame=FrameIdentity(
                file_name=f"{site}-{i:06d}.fits", sha256=digest, width_px=2048, height_px=2048
            ),
            label=QualityLabel.GOOD,
            confidence=0.9,
            probabilities=ClassProbabilities(good=0.9, medium=0.08, bad=0.02),
            model=ModelRef(name="quality", version="1"),
            metrics=ImageMetrics(
                background_adu=1000.0 + i % 100,
                background_rms_adu=12.0,
                fwhm_arcsec=2.0,
                ellipticity=0.05,
                source_count=400,
                saturated_fraction=0.0,
                transparency=0.9,
            ),
        )
        payloads.append((subject_for(score), score.message_id, score.model_dump_json().encode()))
    return payloads


async def publish_payloads(js, payloads: list[tuple[str, str, bytes]]) -> None:
    for start in range(0, len(payloads), 1000):
        await asyncio.gather(
            *(
                js.publish(subject, data, headers={MSG_ID_HEADER: message_id}, timeout=30)
                for subject, message_id, data in payloads[start : start + 1000]
            )
        )


async def raw_rate(js, count: int, batch: int) -> float:
    """Messages per second of plain nats-py: fetch, strict decode, ack."""
    subscription = await js.pull_subscribe(
        "fleet.site.*.frame.scored", durable="bench-raw", stream=FLEET_STREAM
    )
    seen = 0
    started = time.perf_counter()
    while seen < count:
        for msg in await subscription.fetch(batch, timeout=5):
            decode(msg)
            await msg.ack()
            seen += 1
    return count / (time.perf_counter() - started)


async def coordinator_rate(nc, database_url: str, count: int, batch: int) -> float:
    """Messages per second of the coordinator's frame-score consumer into a database."""
    engine = open_store(database_url)
    counts: Counter[str] = Counter()
    with ThreadPoolExecutor(1) as executor:
        writer = StoreWriter(engine, executor, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
        consumer = KindConsumer(
            nc,
            "frame-score",
            writer,
            durable=f"bench-{uuid.uuid4().hex[:8]}",
            batch=batch,
            idle_wait_s=0.2,
            ack_wait_s=10.0,
            counts=counts,
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run(stop))
        while counts["frame-score"] < count:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    engine.dispose()
    return count / elapsed


async def console_latency(nats_url: str, database_url: str, first: int) -> np.ndarray:
    """Seconds from publishing each score to the console API counting it, at a steady rate
    (scores numbered from `first`, unlike any published before)."""
    settings = CoordinatorSettings(
        nats_url=nats_url,
        database_url=database_url,
        http_port=0,
        ensure_streams=False,
        consumer_prefix="bench-latency",
    )
    coordinator = Coordinator(settings)
    await coordinator.start()
    nc = await connect(nats_url, name="bench-latency")
    js = nc.jetstream()
    payloads = score_payloads(int(LATENCY_RATE_HZ * LATENCY_SECONDS), first=first)
    sent_at: list[float] = []
    seen: list[tuple[float, int]] = []
    async with httpx.AsyncClient(base_url=coordinator.console_url) as http:

        async def poll() -> None:
            while len(seen) == 0 or seen[-1][1] < len(payloads):
                frames = (await http.get("/api/summary")).json()["frames"]
                seen.append((time.perf_counter(), frames))
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        for i, (subject, message_id, data) in enumerate(payloads):
            await asyncio.sleep(max(0.0, started + i / LATENCY_RATE_HZ - time.perf_counter()))
            sent_at.append(time.perf_counter())
            await js.publish(subject, data, headers={MSG_ID_HEADER: message_id})
        await asyncio.wait_for(poller, timeout=60)
    await nc.close()
    await coordinator.stop()
    times = np.array([t for t, _ in seen])
    counts = np.array([n for _, n in seen])
    first_seen = times[np.searchsorted(counts, np.arange(1, len(payloads) + 1), side="left")]
    return first_seen - np.array(sent_at)


def fresh_postgres(admin_url: str) -> str | None:
    """A new PostgreSQL database for the run, or None if the server is not reachable."""
    name = f"skyfleet_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError:
        return None
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_postgres(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def run_all(workdir: Path, knobs: BenchSettings) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    messages = knobs.ingest_messages
    config = NatsServerConfig.on_free_ports("bench-ingest", workdir / "nats")
    postgres = fresh_postgres(knobs.postgres_url)
    with EmbeddedNats(config) as server:
        nc = await connect(server.url, name="bench-ingest")
        js = nc.jetstream()
        await ensure_streams(js, central_streams())
        await publish_payloads(js, score_payloads(messages))
        batch = CoordinatorSettings().ingest_batch
        freeze_startup_heap()  # as the coordinator does once started; the raw loop gains too
        raw = await raw_rate(js, messages, batch)
        rows.append(("raw nats-py fetch+decode+ack", raw, "1.00"))
        targets = [("SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}")]
        if postgres:
            targets.append(("PostgreSQL", postgres))
        for name, url in targets:
            rate = await coordinator_rate(nc, url, messages, batch)
            rows.append((f"coordinator ingest → {name}", rate, f"{rate / raw:.2f}"))
        await js.purge_stream(FLEET_STREAM)  # the latency run starts on an empty stream
        await nc.close()
        latency = await console_latency(
            server.url, f"sqlite:///{workdir / 'latency.sqlite3'}", first=messages
        )
        rows.append(("latency p50 score → console API (s)", float(np.percentile(latency, 50)), ""))
        rows.append(("latency p95 score → console API (s)", float(np.percentile(latency, 95)), ""))
    if postgres:
        drop_postgres(knobs.postgres_url, postgres)
    return rows


def main() -> None:
    knobs = BenchSettings()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        rows = asyncio.run(run_all(Path(tmp), knobs))
    table = Table(
        title=f"Coordinator ingest, {knobs.ingest_messages} FrameScore messages "
        f"({utc_now():%Y-%m-%d %H:%M} UTC)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("of raw", justify="right")
    for name, value, ratio in rows:
        shown = (
            f"{value:,.0f} msg/s" if "msg" not in name and "latency" not in name else f"{value:.3f}"
        )
        table.add_row(name, shown, ratio)
    Console().print(table)


if __name__ == "__main__":
    main()

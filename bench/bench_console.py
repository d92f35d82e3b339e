"""The ops console's read API against PostgreSQL: p50 and p95 latency of every route's API with
10,000 frames, 2,000 candidates and 300 sources in the store, against the 200 ms target.

A scratch database is created on the PostgreSQL server (`SKYFLEET_BENCH_POSTGRES_URL`, the
admin database) and dropped afterwards. It is seeded by the coordinator's own write path
(`StoreWriter`: frame scores with reasons and thumbnails from five sites over the last ten
hours, candidates fused into targets, 300 of them sources seen three times), plus follow-up
rows. The console then runs under uvicorn on a free local port and each endpoint is asked
`REQUESTS_PER_ENDPOINT` times over HTTP after `WARMUP_REQUESTS` unmeasured ones (the first
answers compute a night's Sun and Moon once per site and warm the caches).
Run: `python -m bench console`.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import numpy as np
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, insert, select

from bench.bench_ingest import drop_postgres, fresh_postgres
from bench.settings import BenchSettings
from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.scheduling.sky import configure_offline_iers
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store.tables import CandidateRow, FollowUp, FrameScoreRow, Target, table_of
from imaging.thumbnail import thumbnail_png_b64
from protos import (
    CameraConfig,
    ClassProbabilities,
    FleetMessage,
    FrameIdentity,
    FrameScore,
    ImageMetrics,
    ModelRef,
    QualityLabel,
    QualityReason,
    SiteConfig,
    SiteHeartbeat,
    SiteLocation,
    TransientCandidate,
    TransientCutouts,
    stable_message_id,
)
from protos.base import utc_now
from protos.transients import EncodedArray

FRAMES = 10_000
CANDIDATES = 2_000
SOURCES = 300
DETECTIONS_PER_SOURCE = 3
FOLLOWUPS = 150
TARGET_P95_MS = 200.0
REQUESTS_PER_ENDPOINT = 40
WARMUP_REQUESTS = 3
SPAN = timedelta(hours=10)
"""Frames and candidates spread over the last ten hours (a night)."""
SITES = {
    "la-silla": (-29.26, -70.73),
    "la-palma": (28.76, -17.88),
    "hanle": (32.78, 78.96),
    "siding-spring": (-31.27, 149.06),
    "mt-graham": (32.70, -109.89),
}
PROBABILITIES = {
    QualityLabel.GOOD: ClassProbabilities(good=0.8, medium=0.15, bad=0.05),
    QualityLabel.MEDIUM: ClassProbabilities(good=0.2, medium=0.7, bad=0.1),
    QualityLabel.BAD: ClassProbabilities(good=0.05, medium=0.15, bad=0.8),
}
SEEING = QualityReason(reason="seeing", value=4.0, threshold=2.5, unit="arcsec", message="wide")


def site_messages(now: datetime) -> list[FleetMessage]:
    """Each site's configuration and a fresh heartbeat."""
    messages: list[FleetMessage] = []
    for site_id, (lat, lon) in SITES.items():
        camera = CameraConfig(
            pixel_scale_arcsec=0.6,
            gain_e_per_adu=1.5,
            read_noise_e=6.0,
            saturation_adu=60000.0,
            width_px=2048,
            height_px=2048,
        )
        messages.append(
            SiteConfig(
                message_id=stable_message_id(SiteConfig.KIND, site_id, "bench"),
                site_id=site_id,
                name=site_id.replace("-", " ").title(),
                location=SiteLocation(lat_deg=lat, lon_deg=lon, height_m=2000.0),
                horizon_limit_deg=20.0,
                camera=camera,
            )
        )
        messages.append(
            SiteHeartbeat(
                message_id=stable_message_id(SiteHeartbeat.KIND, site_id, now.isoformat()),
                site_id=site_id,
                created_at=now,
                agent_version="0.1.0",
                model_version="1",
                disk_free_bytes=10**11,
            )
        )
    return messages


def frame_scores(now: datetime, thumbnail: str) -> list[FleetMessage]:
    """`FRAMES` scores over the last `SPAN`, round-robin over the sites; one in five bad."""
    rng = np.random.default_rng(7)
    sites = list(SITES)
    scores: list[FleetMessage] = []
    for i in range(FRAMES):
        site_id = sites[i % len(sites)]
        label = [QualityLabel.GOOD] * 3 + [QualityLabel.MEDIUM, QualityLabel.BAD]
        chosen = label[i % 5]
        when = now - SPAN + SPAN * (i / FRAMES)
        digest = f"{i:064x}"
        scores.append(
            FrameScore(
                message_id=stable_message_id(FrameScore.KIND, site_id, digest),
                site_id=site_id,
                created_at=when,
                frame=FrameIdentity(
                    file_name=f"{site_id}-{i:06d}.fits",
                    sha256=digest,
                    date_obs=when,
                    width_px=2048,
                    height_px=2048,
                ),
                label=chosen,
                confidence=PROBABILITIES[chosen].of(chosen),
                probabilities=PROBABILITIES[chosen],
                model=ModelRef(name="quality", version="1"),
                metrics=ImageMetrics(
                    background_adu=float(rng.normal(1000.0, 50.0)),
                    background_rms_adu=12.0,
                    fwhm_arcsec=float(rng.uniform(1.0, 4.0)),
                    source_count=400,
                    saturated_fraction=0.0,
                    transparency=float(rng.uniform(0.3, 1.0)),
                ),
                reasons=[SEEING] if chosen is QualityLabel.BAD else [],
                thumbnail_png_b64=thumbnail,
            )
        )
    return scores


def candidates(now: datetime) -> list[FleetMessage]:
    """`SOURCES` positions seen `DETECTIONS_PER_SOURCE` times (fused into sources) and single
    detections elsewhere, `CANDIDATES` in all."""
    stamp = EncodedArray.from_raw((21, 21), np.ones((21, 21), dtype="<f4").tobytes())
    cutouts = TransientCutouts(new=stamp, reference=stamp, difference=stamp)
    sites = list(SITES)
    out: list[FleetMessage] = []
    for i in range(CANDIDATES):
        repeat = i < SOURCES * DETECTIONS_PER_SOURCE
        position = i // DETECTIONS_PER_SOURCE if repeat else i
        ra, dec = (position * 0.7) % 360.0, -60.0 + (position * 0.37) % 120.0
        site_id = sites[i % len(sites)]
        digest = f"c{i:063x}"
        out.append(
            TransientCandidate(
                message_id=stable_message_id(TransientCandidate.KIND, site_id, digest, "1"),
                site_id=site_id,
                frame_sha256=digest,
                frame_file_name=f"{site_id}-c{i:06d}.fits",
                observed_at=now - SPAN + SPAN * (i / CANDIDATES),
                ra_deg=ra,
                dec_deg=dec,
                x_px=100.0,
                y_px=100.0,
                flux_adu=5000.0,
                flux_err_adu=100.0,
                snr=50.0,
                real_bogus=0.9,
                cutouts=cutouts,
            )
        )
    return out


def seed(engine: Engine, now: datetime) -> None:
    """Write the fleet through the coordinator's ingest path, then the follow-up rows."""
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    thumbnail = thumbnail_png_b64(np.random.default_rng(1).normal(1000.0, 10.0, (96, 96)))
    assert thumbnail is not None
    by_kind: dict[str, list[FleetMessage]] = {}
    messages = site_messages(now) + frame_scores(now, thumbnail) + candidates(now)
    for message in messages:
        by_kind.setdefault(message.KIND, []).append(message)
    for kind, batch in by_kind.items():
        for start in range(0, len(batch), 500):
            writer.write(kind, batch[start : start + 500], now)
    targets = table_of(Target)
    with engine.begin() as conn:
        sources = conn.execute(
            select(targets.c.target_id).where(targets.c.n_detections >= 2).limit(FOLLOWUPS)
        ).scalars()
        rows = [
            {
                "request_id": f"bench-{target_id}",
                "target_id": target_id,
                "site_id": list(SITES)[n % len(SITES)],
                "state": ("queued", "observing", "done")[n % 3],
                "priority": 5,
                "score": 0.7,
                "not_before": now,
                "deadline": now + timedelta(hours=12),
                "sent_at": now,
                "updated_at": now,
                "reason": "",
            }
            for n, target_id in enumerate(sources)
        ]
        conn.execute(insert(table_of(FollowUp)), rows)


def endpoints(engine: Engine) -> list[tuple[str, list[str]]]:
    """Each endpoint measured, with the paths asked in turn (one per site where it has one)."""
    with engine.connect() as conn:
        frame = conn.execute(select(table_of(FrameScoreRow).c.message_id).limit(1)).scalar()
        detection = conn.execute(select(table_of(CandidateRow).c.message_id).limit(1)).scalar()
        target_ids = table_of(Target).c.target_id
        source = conn.execute(
            select(target_ids).where(table_of(Target).c.n_detections >= 2).limit(1)
        ).scalar()
    per_site = [f"/api/sites/{s}" for s in SITES]
    since = (utc_now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("summary", ["/api/summary"]),
        ("models", ["/api/models"]),
        ("terminator", ["/api/terminator"]),
        ("site", per_site),
        ("site frames (page 1)", [f"{p}/frames?limit=50" for p in per_site]),
        ("site frames (bad, seeing)", [f"{p}/frames?label=bad&reason=seeing" for p in per_site]),
        ("site frames (page 31)", [f"{p}/frames?limit=50&offset=1500" for p in per_site]),
        ("site metrics", [f"{p}/metrics" for p in per_site]),
        ("site quality bins", [f"{p}/quality?bin_s=600" for p in per_site]),
        ("frame thumbnail", [f"/api/frames/{frame}/thumbnail.png"]),
        ("night report", ["/api/night"]),
        ("night report CSV", ["/api/night?format=csv"]),
        ("night report (one site)", [f"/api/night?site={s}" for s in SITES]),
        ("targets", ["/api/targets"]),
        ("candidates", ["/api/candidates"]),
        ("cutouts", [f"/api/cutouts/{detection}"]),
        ("labels", [f"/api/labels?since={since}"]),
        ("source", [f"/api/sources/{source}"]),
        ("follow-ups", ["/api/followups"]),
    ]


@contextlib.contextmanager
def serving(engine: Engine) -> Iterator[str]:
    """The console under uvicorn on a free loopback port, for the duration of the block."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_console(engine, CoordinatorSettings())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def measure(base_url: str, paths: list[str]) -> tuple[list[float], set[int]]:
    """Milliseconds of each measured request, and the status codes seen."""
    timings, statuses = [], set()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for n in range(WARMUP_REQUESTS * len(paths) + REQUESTS_PER_ENDPOINT):
            path = paths[n % len(paths)]
            started = time.perf_counter()
            answer = http.get(path)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            statuses.add(answer.status_code)
            if n >= WARMUP_REQUESTS * len(paths):
                timings.append(elapsed_ms)
    return timings, statuses


def main() -> None:
    knobs = BenchSettings()
    configure_offline_iers()
    url = fresh_postgres(knobs.postgres_url)
    if url is None:
        Console().print(f"[red]PostgreSQL not reachable at {knobs.postgres_url}[/]")
        return
    try:
        engine = open_store(url)
        now = utc_now()
        started = time.perf_counter()
        seed(engine, now)
        seeded_s = time.perf_counter() - started
        table = Table(
            title=f"Console API on PostgreSQL: {FRAMES:,} frames, {CANDIDATES:,} candidates, "
            f"{SOURCES} sources ({now:%Y-%m-%d %H:%M} UTC; seeded in {seeded_s:.0f} s)"
        )
        for column in ("endpoint", "status", "p50 ms", "p95 ms", "max ms", "≤ 200 ms p95"):
            table.add_column(column, justify="left" if column == "endpoint" else "right")
        with serving(engine) as base_url:
            for name, paths in endpoints(engine):
                timings, statuses = measure(base_url, paths)
                p50, p95 = np.percentile(timings, [50, 95])
                table.add_row(
                    name,
                    ",".join(map(str, sorted(statuses))),
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    f"{max(timings):.1f}",
                    "yes" if p95 <= TARGET_P95_MS and statuses == {200} else "NO",
                )
        Console().print(table)
        engine.dispose()
    finally:
        drop_postgres(knobs.postgres_url, url)


if __name__ == "__main__":
    main()

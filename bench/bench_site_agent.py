"""Site agent throughput and latency: frames/s and file-complete → JetStream-ack latency for
2048² and 4096² frames, and the agent's memory (RSS), with a real agent process.

The agent runs as `skyfleet site run` against a site nats-server started here (so its RSS is the
agent's alone). A frame is *complete* when it is renamed into the watched folder; its latency
ends when its `FrameScore` is published to the site's JetStream (seen by a subscriber on the site
server, which is where the acknowledgement comes from). Latency is measured one frame at a time
(no scoring queue); throughput with a batch dropped at once. Twice: with transient search off
(the quality path) and on (every frame of one field: from the second frame on each is searched
against the reference the agent built, and good frames refresh it in the background). The search
runs after each score is published, so with search on every frame is scored while the searches
of the frames before it are still running: the worst case for the score's latency. A soak of a few
hundred small frames (search on) then shows whether memory stays flat (RSS after the first and
the last batch).
"""

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from rich.console import Console
from rich.table import Table

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats
from protos import FrameScore, FrameSearched, QualityLabel, decode_subject_message
from protos.subjects import subject_for_kind
from site_agent.site_nats import site_server_config
from training.simulator import SimCamera, SimulatedFrame, simulate_frame
from training.simulator.dataset import simulate_labelled_frame

SITE = "bench"
NIGHT = datetime(2026, 11, 24, 3, tzinfo=UTC)
CADENCE = timedelta(seconds=10)
SIDES_PX = (2048, 4096)
LATENCY_FRAMES = 12
BATCH_FRAMES = 8
SOAK_SIDE_PX = 512
SOAK_BATCHES = 10
SOAK_BATCH_FRAMES = 30


@cache
def _field(side: int) -> SimulatedFrame:
    """The one field the bench observes with a `side`² camera: pointing, stars and a good night."""
    return simulate_labelled_frame(
        QualityLabel.GOOD,
        SimCamera(width_px=side, height_px=side),
        seed=side,
        index=0,
        date_obs=NIGHT,
    )


def _exposures(side: int, folder: Path, count: int, first: int = 0) -> list[Path]:
    """`count` exposures of the field, on a steady night (its conditions) with fresh photons,
    cosmic rays and noise each: a search against a reference built from the frames before is a
    real subtraction, not one of a frame from itself."""
    field = _field(side)
    paths = []
    for index in range(first, first + count):
        frame = simulate_frame(
            field.truth.conditions,
            field.truth.camera,
            date_obs=NIGHT + index * CADENCE,
            site_name=field.truth.site_name,
            rng=np.random.default_rng([side, index]),
            ra_deg=field.truth.ra_deg,
            dec_deg=field.truth.dec_deg,
            stars=field.stars,
            galaxies=field.galaxies,
        )
        path = folder / f"{side}-{index:03d}.fits"
        fits.PrimaryHDU(data=frame.data, header=frame.header).writeto(path)
        paths.append(path)
    return paths


def _rss_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


class ScoreWatch:
    """Records when each frame's score is published on the site server."""

    def __init__(self) -> None:
        self.seen_at: dict[str, float] = {}
        self.searches: list[FrameSearched] = []
        self.event = asyncio.Event()

    async def on_message(self, msg) -> None:
        message = decode_subject_message(msg.subject, msg.data)
        if isinstance(message, FrameSearched):
            self.searches.append(message)
            self.event.set()
            return
        assert isinstance(message, FrameScore)
        self.seen_at[message.frame.file_name] = time.perf_counter()
        self.event.set()

    async def wait_for_searches(self, count: int, timeout_s: float = 900.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while len(self.searches) < count:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), max(0.1, deadline - time.perf_counter()))

    async def wait_for(self, names: set[str], timeout_s: float = 600.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while not names <= self.seen_at.keys():
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), max(0.1, deadline - time.perf_counter()))


async def _measure(side: int, watch_dir: Path, staged: list[Path], seen: ScoreWatch) -> dict:
    latencies_s = []
    for path in staged[:LATENCY_FRAMES]:
        started = time.perf_counter()
        path.rename(watch_dir / path.name)
        await seen.wait_for({path.name})
        latencies_s.append(seen.seen_at[path.name] - started)
    batch = staged[LATENCY_FRAMES:]
    started = time.perf_counter()
    for path in batch:
        path.rename(watch_dir / path.name)
    await seen.wait_for({p.name for p in batch})
    elapsed_s = max(seen.seen_at[p.name] for p in batch) - started
    quantiles = statistics.quantiles(latencies_s, n=20, method="inclusive")
    return {
        "side": side,
        "frames_per_s": len(batch) / elapsed_s,
        "p50_s": statistics.median(latencies_s),
        "p95_s": quantiles[18],
        "max_s": max(latencies_s),
    }


async def _soak(root: Path, watch_dir: Path, seen: ScoreWatch, pid: int) -> list[float]:
    """RSS (MiB) after each batch of small frames."""
    rss_mib = []
    for batch in range(SOAK_BATCHES):
        folder = root / f"soak-{batch}"
        folder.mkdir()
        paths = _exposures(SOAK_SIDE_PX, folder, SOAK_BATCH_FRAMES, first=batch * SOAK_BATCH_FRAMES)
        for path in paths:
            path.rename(watch_dir / path.name)
        await seen.wait_for({p.name for p in paths})
        rss_mib.append(_rss_mib(pid)[0])
    return rss_mib


async def _run(
    root: Path, *, search: bool, soak: bool
) -> tuple[list[dict], tuple[float, float], list[float]]:
    """One agent: with `search`, transient search on (every frame is of one field, so from the
    second frame on each is searched against the reference the agent built)."""
    server = EmbeddedNats(site_server_config(SITE, root / "nats", hub_leaf_url=None)).start()
    staged = {side: _exposures(side, root, LATENCY_FRAMES + BATCH_FRAMES) for side in SIDES_PX}
    watch_dir = root / "incoming"
    watch_dir.mkdir()
    agent = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "skyfleet"),
            "site",
            "run",
            "--site-id",
            SITE,
            "--watch",
            str(watch_dir),
            "--work-dir",
            str(root / "work"),
            "--nats",
            server.url,
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        env={
            **os.environ,
            "SKYFLEET_SITE_SEARCH_TRANSIENTS": str(search).lower(),
            "SKYFLEET_SITE_SEARCH_BACKLOG": "100",  # every frame measured is searched
        },
    )
    nc = await connect(server.url, name="bench")
    try:
        seen = ScoreWatch()
        await nc.subscribe(subject_for_kind("frame-score", SITE), cb=seen.on_message)
        await nc.subscribe(subject_for_kind("frame-searched", SITE), cb=seen.on_message)
        warmup = _exposures(256, root, 1)[0]
        await asyncio.sleep(1.0)
        warmup.rename(watch_dir / warmup.name)
        await seen.wait_for({warmup.name}, timeout_s=120)
        results = [await _measure(side, watch_dir, staged[side], seen) for side in SIDES_PX]
        if search:  # the searches lag behind the scores: memory counts once they are all done
            await seen.wait_for_searches(len(seen.seen_at))
        rss_now_mib = _rss_mib(agent.pid)[0]
        searches = list(seen.searches)
        soak_rss_mib = await _soak(root, watch_dir, seen, agent.pid) if soak else []
        # the peak of the whole run: a reference rebuild may still run after the last search
        memory = (rss_now_mib, _rss_mib(agent.pid)[1])
    finally:
        agent.terminate()
        agent.wait(timeout=60)
        await nc.close()
        server.stop()
    return results, memory, soak_rss_mib, searches


def _search_summary(searches: list[FrameSearched]) -> str:
    """How many frames were searched (the memory above includes all of it), and how long a
    search took (with the agent also scoring the frames that kept arriving)."""
    done = [s for s in searches if s.search.attempted]
    if not done:
        return f"{len(searches)} search outcomes, none searched"
    by_size: dict[int, list[float]] = {}
    for s in done:
        by_size.setdefault(s.frame.width_px, []).append((s.search_ms or 0.0) / 1000)
    sizes = ", ".join(
        f"{len(times)} of {side}² (median {statistics.median(times):.1f} s)"
        for side, times in sorted(by_size.items())
    )
    reasons = Counter(s.search.skipped_reason for s in searches if not s.search.attempted)
    why = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common())
    return f"frames searched: {sizes}; {len(searches) - len(done)} not searched" + (
        f" ({why})" if why else ""
    )


def main() -> None:
    console = Console()
    for search in (False, True):
        with tempfile.TemporaryDirectory(prefix="bench-site-agent-") as work:
            results, (rss_mib, peak_mib), soak_rss_mib, searches = asyncio.run(
                _run(Path(work), search=search, soak=search)
            )
        path = "score + transient search" if search else "quality path (search off)"
        frames = f"{LATENCY_FRAMES} + {BATCH_FRAMES} frames per size"
        table = Table(title=f"site agent, {path}, {frames}")
        columns = ("frame", "frames/s", "latency p50 (s)", "p95 (s)", "max (s)", "goal p95")
        for column in columns:
            table.add_column(column, justify="right")
        for row in results:
            table.add_row(
                f"{row['side']}²",
                f"{row['frames_per_s']:.2f}",
                f"{row['p50_s']:.3f}",
                f"{row['p95_s']:.3f}",
                f"{row['max_s']:.3f}",
                "≤ 1 s" if row["side"] == 4096 else "",
            )
        console.print(table)
        console.print(
            f"agent RSS {rss_mib:.0f} MiB now, {peak_mib:.0f} MiB peak (goal ≤ 1.5 GB); "
            f"{len(os.sched_getaffinity(0))} cores"
        )
        if search:
            console.print(_search_summary(searches))
    console.print(
        f"soak (search on), {SOAK_BATCHES} x {SOAK_BATCH_FRAMES} frames of {SOAK_SIDE_PX}²: RSS "
        f"{soak_rss_mib[0]:.0f} MiB after the first batch, {soak_rss_mib[-1]:.0f} MiB after the "
        f"last (max {max(soak_rss_mib):.0f})"
    )


if __name__ == "__main__":
    main()

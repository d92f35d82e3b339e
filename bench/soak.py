"""Soak: a whole fleet (`skyfleet demo`: hub, coordinator, three sites with their leaf servers,
identities on) run for a long night, with the resident memory and open file descriptors of every
process sampled, and their growth reported.

`python -m bench.soak [MINUTES]` (default 30; `make soak`). The demo runs with a frame every
`CADENCE_S` seconds per site for MINUTES; samples are taken every `SAMPLE_EVERY_S` from /proc (the
demo process and all its children: the hub's and sites' nats-servers, each site's Alpaca
simulator and sky camera). Growth is the slope of a
least-squares line through each process's samples after `WARM_UP_S` (model loading, first
references, caches filling), in MB and descriptors per hour. Bounded means: RSS growth under
`RSS_GROWTH_LIMIT_MB_PER_H` and no descriptor growth beyond `FD_GROWTH_LIMIT_PER_H`. The samples
are written as CSV beside the demo's files for plotting.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

CADENCE_S = 4.0
"""A frame every 4 s at each of the three sites: a busy survey camera, about 0.75 frames/s."""
FRAME_SIDE_PX = 1024
SAMPLE_EVERY_S = 15.0
WARM_UP_S = 600.0
"""Samples before this are left out of the growth fit: models load, references are built, the
stores' caches fill. Measured (30-min run, 2026-12-03): the demo process rose from 670 MB at 2 min
to about 850 MB at 10 min and then held (slope -28 to +18 MB/h after 10-15 min); a fit from 3 min
on read that filling as a 108 MB/h leak."""
RSS_GROWTH_LIMIT_MB_PER_H = 50.0
"""More than this per hour would fill an 8 GB Jetson in days: that is a leak."""
FD_GROWTH_LIMIT_PER_H = 10.0
PAGE_KB = 1024
CONSOLE_WIDTH = 140
"""Wide enough for the table's eleven columns when the output is not a terminal (`make soak`)."""
DRAIN_S = 120.0
"""After the last frame the demo waits this long at most for the fleet to catch up."""


@dataclass
class Series:
    """One process's samples: seconds since start, RSS in MB, open descriptors."""

    name: str
    times_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def slope_per_h(self, values: list[float] | list[int]) -> float:
        t = np.array(self.times_s)
        keep = t >= WARM_UP_S
        if keep.sum() < 3:
            return float("nan")
        return float(np.polyfit(t[keep] / 3600.0, np.array(values, dtype=float)[keep], 1)[0])


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _tree(root: int) -> list[int]:
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue += _children(pid)
    return pids


def _name(pid: int) -> str:
    """A name for each process of the fleet, unique among them (its pid where several run the
    same command: the demo's Alpaca simulators and sky cameras, one per site)."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = " ".join(a.decode(errors="replace") for a in args if a)
    if "nats-server" in text:
        conf = Path(next((a for a in text.split() if a.endswith(".conf")), ""))
        owner = conf.parent.name if conf.parent.name != "nats" else conf.parent.parent.name
        return f"nats-server {owner}"  # the hub's, or a site's (.../<site>/nats/...)
    words = text.split()
    if not words:  # forked and not yet running its command (or already gone): sampled later
        raise ProcessLookupError(pid)
    if "-m" in words[:-1]:  # `python -m skyfleet.sky_camera ...`: the module names it
        return f"{words[words.index('-m') + 1]} {pid}"
    command = Path(words[0]).name
    if command.startswith("python") and len(words) > 1:  # a script: `python .../skyfleet demo`
        command = Path(words[1]).name
    subcommand = [word for word in words[2:3] if not word.startswith("-")]
    return f"{' '.join([command, *subcommand])} {pid}"


def _sample(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kb / PAGE_KB, len(os.listdir(f"/proc/{pid}/fd"))


def soak(minutes: float, work: Path) -> tuple[dict[str, Series], dict[str, object]]:
    frames = max(1, int(minutes * 60 / CADENCE_S))
    skyfleet = str(Path(sys.executable).parent / "skyfleet")  # the installed command
    command = [skyfleet, "demo", "--json", "--port", "0"]
    command += ["--frames", str(frames), "--cadence", str(CADENCE_S)]
    command += ["--duration", str(minutes * 60 + DRAIN_S)]
    command += ["--camera-px", str(FRAME_SIDE_PX), "--work-dir", str(work)]
    series: dict[str, Series] = {}
    started = time.monotonic()
    with (work.parent / "demo.log").open("w") as log:
        demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        while demo.poll() is None:
            now = time.monotonic() - started
            for pid in _tree(demo.pid):
                try:
                    name, (rss, fds) = _name(pid), _sample(pid)
                except (OSError, StopIteration):
                    continue  # the process ended between listing and reading
                entry = series.setdefault(name, Series(name))
                entry.times_s.append(now)
                entry.rss_mb.append(rss)
                entry.fds.append(fds)
            time.sleep(SAMPLE_EVERY_S)
        output = demo.stdout.read() if demo.stdout else ""
    summary = json.loads(output) if output.strip().startswith("{") else {"exit": demo.returncode}
    return series, summary


def _write_csv(series: dict[str, Series], path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["process", "t_s", "rss_mb", "fds"])
        for entry in series.values():
            for row in zip(entry.times_s, entry.rss_mb, entry.fds, strict=True):
                writer.writerow([entry.name, *row])


def report(series: dict[str, Series], minutes: float) -> Table:
    table = Table(title=f"soak: {minutes:.0f} min fleet run, growth after {WARM_UP_S:.0f} s")
    for column in ("process", "samples", "RSS start MB", "RSS end MB", "RSS max MB"):
        table.add_column(column, justify="right")
    for column in ("RSS MB/h", "fds start", "fds end", "fds/h", "bounded"):
        table.add_column(column, justify="right")
    for entry in sorted(series.values(), key=lambda s: s.name):
        rss_h, fd_h = entry.slope_per_h(entry.rss_mb), entry.slope_per_h(entry.fds)
        bounded = rss_h < RSS_GROWTH_LIMIT_MB_PER_H and fd_h < FD_GROWTH_LIMIT_PER_H
        table.add_row(
            entry.name,
            str(len(entry.times_s)),
            f"{entry.rss_mb[0]:.0f}",
            f"{entry.rss_mb[-1]:.0f}",
            f"{max(entry.rss_mb):.0f}",
            f"{rss_h:+.1f}",
            str(entry.fds[0]),
            str(entry.fds[-1]),
            f"{fd_h:+.1f}",
            "yes" if bounded else "NO",
        )
    return table


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    console = Console(width=CONSOLE_WIDTH)
    with tempfile.TemporaryDirectory(prefix="skyfleet-soak-") as folder:
        work = Path(folder) / "fleet"
        console.print(f"soak: {minutes:.0f} min of `skyfleet demo`, sampled every 15 s ...")
        series, summary = soak(minutes, work)
        _write_csv(series, Path(folder).parent / "skyfleet-soak.csv")
    console.print(report(series, minutes))
    fleet = summary.get("coordinator", {})
    frames = fleet.get("frames") if isinstance(fleet, dict) else None
    console.print(f"frames stored at the centre: {frames}; samples in /tmp/skyfleet-soak.csv")


if __name__ == "__main__":
    main()

"""Run the benchmarks: all of them, or those named (`python -m bench scoring ingest`)."""

import importlib
import pkgutil
import sys
import time

from rich.console import Console

import bench


def _bench_names() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def run(selected: list[str]) -> int:
    """Run the selected benchmarks (all if none), each printing its own table."""
    console = Console()
    names = selected or _bench_names()
    unknown = sorted(set(names) - set(_bench_names()))
    if unknown:
        console.print(f"[red]unknown benchmark(s): {', '.join(unknown)}[/]; have {_bench_names()}")
        return 2
    for name in names:
        console.rule(f"bench_{name}")
        started = time.perf_counter()
        importlib.import_module(f"bench.bench_{name}").main()
        console.print(f"[dim]bench_{name} took {time.perf_counter() - started:.1f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

"""Run the benchmarks: all of them, or those named (`python -m bench scoring ingest`);
`python -m bench --help` lists them and their knobs.

The knobs are `SKYFLEET_BENCH_*` environment variables, read into one settings object
(`bench.settings.BenchSettings`, where each is documented); unset, a benchmark measures what
its docstring says.
"""

import ast
import importlib
import pkgutil
import sys
import textwrap
import time
from pathlib import Path

from rich.console import Console

import bench
from bench.settings import BenchSettings

HELP_FLAGS = {"-h", "--help"}


def _bench_names() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def _summary(name: str) -> str:
    """The first sentence of a benchmark's docstring, read without importing the benchmark
    (its imports are slow)."""
    source = (Path(bench.__path__[0]) / f"bench_{name}.py").read_text()
    paragraph = (ast.get_docstring(ast.parse(source)) or "").split("\n\n")[0]
    return " ".join(paragraph.split()).split(". ")[0].removesuffix(".")


def usage() -> str:
    """What `--help` prints: how to run, the benchmarks and the knobs with their defaults."""
    prefix = BenchSettings.model_config.get("env_prefix", "")
    lines = ["usage: python -m bench [NAME ...]   (all benchmarks when none is named)", ""]
    lines += ["benchmarks:"]
    for name in _bench_names():
        lines += textwrap.wrap(
            _summary(name), 96, initial_indent=f"  {name:<12} ", subsequent_indent=" " * 15
        )
    lines += ["", "knobs (environment):"]
    for field, info in BenchSettings.model_fields.items():
        lines.append(f"  {prefix}{field.upper()} (default {info.default!r})")
        lines += textwrap.wrap(
            str(info.description), 96, initial_indent=" " * 6, subsequent_indent=" " * 6
        )
    return "\n".join(lines)


def run(selected: list[str]) -> int:
    """Run the selected benchmarks (all if none), each printing its own table."""
    console = Console()
    if HELP_FLAGS & set(selected):
        print(usage())
        return 0
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

"""`skyfleet demo`: a whole fleet on this machine (`skyfleet.demo_fleet`), shown live in the
terminal, or a short scripted night that prints its summary (`--fast`, `--json`)."""

import asyncio
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:  # the fleet (torch, the coordinator) loads only when the demo runs
    from skyfleet.demo_fleet import DemoFleet, DemoSummary

console = Console()

FAST_FRAMES_PER_SITE = 8
FAST_CADENCE_S = 1.0


def _site_table(fleet: "DemoFleet") -> Group:
    table = Table(title="Skyfleet demo: three sites, one coordinator")
    table.add_column("site")
    for column in ("frames", "scored", "good", "med", "bad", "rej", "cand", "f-up", "link"):
        table.add_column(column, justify="right")
    for site_id, agent in fleet.agents.items():
        status = agent.status()
        telescope = fleet.telescopes.get(site_id)
        table.add_row(
            site_id,
            str(telescope.frames_written if telescope else 0),
            str(status.frames_scored),
            str(status.labels.get("good", 0)),
            str(status.labels.get("medium", 0)),
            str(status.labels.get("bad", 0)),
            str(status.frames_rejected),
            str(status.candidates),
            str(fleet.followups_at(site_id)[1]),  # follow-up exposures taken
            status.link_state.value,
        )
    coordinator = fleet.coordinator
    if coordinator is None:
        return Group(table)
    fleet_view = coordinator.summary()
    followups = ", ".join(f"{k} {v}" for k, v in sorted(fleet_view.followups.items())) or "none"
    lines = (
        f"coordinator: {fleet_view.frames} frames, {fleet_view.candidates} candidates, "
        f"{fleet_view.targets} targets ({fleet_view.multi_site_targets} seen by 2+ sites), "
        f"follow-ups: {followups}"
    )
    alerts = "; ".join(fleet_view.alerts[-3:])
    return Group(table, lines, f"[yellow]{alerts}[/]" if alerts else "")


def demo(
    fast: bool = typer.Option(
        False, "--fast", help=f"A scripted night of {FAST_FRAMES_PER_SITE} frames per site."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    frames: int | None = typer.Option(
        None, "--frames", min=1, help="Survey frames per site (a scripted night)."
    ),
    cadence: float | None = typer.Option(None, "--cadence", help="Seconds between frames."),
    duration: float | None = typer.Option(
        None, "--duration", min=1.0, help="Longest scripted night, in seconds (default 150)."
    ),
    camera_px: int = typer.Option(1024, "--camera-px", help="Frame side in pixels."),
    console_port: int = typer.Option(8080, "--port", help="Ops console port (0: a free one)."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Keep everything here (default: a temporary folder)."
    ),
) -> None:
    """Run a fleet on this machine: embedded NATS hub, coordinator and ops console, and three
    simulated sites (agents, leaf NATS servers, telescopes writing frames)."""
    from fleetbus.logs import configure_logging
    from skyfleet.demo_fleet import DemoFleet, DemoOptions

    # live: the table shows what the logs would (bad frames, weather alerts); logs would tear it
    configure_logging("WARNING" if json_out else "ERROR")
    frames_per_site = frames or (FAST_FRAMES_PER_SITE if fast else None)
    cadence_s = cadence or (FAST_CADENCE_S if fast else 4.0)
    with tempfile.TemporaryDirectory(prefix="skyfleet-demo-") as scratch:
        options = DemoOptions(
            work_dir=work_dir or Path(scratch),
            camera_px=camera_px,
            cadence_s=cadence_s,
            frames_per_site=frames_per_site,
            console_port=0 if fast and console_port == 8080 else console_port,
            **({"max_duration_s": duration} if duration is not None else {}),
        )
        fleet = DemoFleet(options)
        summary = asyncio.run(_run(fleet, live=not json_out))
    if json_out:
        typer.echo(summary.model_dump_json(indent=2))
        return
    c = summary.coordinator
    console.print(
        f"Demo finished after {summary.duration_s:.0f} s: {c.frames} frames scored "
        f"({c.rejected} rejected), {c.candidates} candidates, {c.targets} targets "
        f"({c.multi_site_targets} seen by two or more sites), follow-ups {dict(c.followups)}."
    )
    if summary.cut_short:
        console.print(
            "[yellow]The scripted night was cut short at its time limit[/]: some frames or "
            "follow-ups were still under way (this machine may be busy).",
            highlight=False,
        )


def _login_announcer(out: Console) -> Callable[["DemoFleet"], None]:
    """A tick that prints the console's operator login once, as soon as the demo made it."""
    announced = False

    def announce(fleet: "DemoFleet") -> None:
        nonlocal announced
        if not announced and fleet.console_login is not None:
            name, token = fleet.console_login
            out.print(f"console login: {name} / {token}", highlight=False)
            announced = True

    return announce


async def _run(fleet: "DemoFleet", *, live: bool) -> "DemoSummary":
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not live:  # the summary is stdout's; the console's login goes to stderr
        return await fleet.run(stop, _login_announcer(Console(stderr=True)))
    shown = False
    announce_login = _login_announcer(console)

    def refresh(current: "DemoFleet") -> None:
        nonlocal shown
        if not shown and current.coordinator is not None:
            console.print(
                f"Ops console: [bold]{current.coordinator.console_url}[/]  (Ctrl-C stops the demo)"
            )
            shown = True
        announce_login(current)
        display.update(_site_table(current))

    console.print("Starting the hub, the coordinator and three sites...")
    with Live(console=console, refresh_per_second=2) as display:
        return await fleet.run(stop, refresh)

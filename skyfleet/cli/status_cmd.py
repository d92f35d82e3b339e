"""`skyfleet status`: the fleet summary in the terminal (the console's summary, from the store)."""

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from coordinator.settings import CoordinatorSettings

if TYPE_CHECKING:
    from coordinator.views import FleetSummary

STATUS_STYLE = {"online": "green", "weather": "yellow", "offline": "red"}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(summary: "FleetSummary") -> Table:
    """The per-site table of a fleet summary."""
    table = Table(title=f"Skyfleet: {len(summary.sites)} sites, {summary.frames} frames")
    for column in ("site", "status", "frames", "good", "medium", "bad", "seeing″", "bkg ADU"):
        table.add_column(column, justify="left" if column in ("site", "status") else "right")
    for column in ("transp.", "frames/h", "model", "queue", "alerts"):
        table.add_column(column, justify="left" if column == "alerts" else "right")
    for s in summary.sites:
        table.add_row(
            s.site_id,
            f"[{STATUS_STYLE[s.status.value]}]{s.status.value}[/]",
            str(s.frames),
            f"{s.fraction_good:.0%}",
            f"{s.fraction_medium:.0%}",
            f"{s.fraction_bad:.0%}",
            _fmt(s.mean_fwhm_arcsec),
            _fmt(s.mean_background_adu, 0),
            _fmt(s.mean_transparency),
            str(s.frames_last_hour),
            s.model_version or "-",
            "-" if s.queue_depth is None else str(s.queue_depth),
            "; ".join(s.alerts),
        )
    return table


def status(
    database: str | None = typer.Option(None, "--database", help="The coordinator's database."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    config: Path | None = typer.Option(None, help="TOML settings file (\\[coordinator] table)."),
) -> None:
    """Print the fleet summary: sites, quality, candidates, follow-ups."""
    settings = CoordinatorSettings.load(config, database_url=database)
    from coordinator.service import open_store  # the store loads only to run
    from coordinator.summary import fleet_summary

    engine = open_store(settings.database_url)
    try:
        summary = fleet_summary(engine, settings)
    finally:
        engine.dispose()
    console = Console()
    if as_json:
        console.print_json(summary.model_dump_json())
        return
    console.print(summary_table(summary))
    followups = ", ".join(f"{n} {state}" for state, n in sorted(summary.followups.items()))
    console.print(
        f"targets: {summary.targets} ({summary.confident_targets} confident) · "
        f"follow-ups: {followups or 'none'} · rejected files: {summary.rejected}",
        highlight=False,
    )
    for alert in summary.alerts:
        console.print(f"[yellow]alert[/] {alert}", highlight=False)

"""`skyfleet coordinator ...`: the central coordinator and ops console."""

import asyncio
import signal
from pathlib import Path

import typer
from rich.console import Console

from coordinator.settings import CoordinatorSettings
from fleetbus.identity import CredentialsError
from fleetbus.logs import configure_logging

app = typer.Typer(help="Run the central coordinator and ops console.", no_args_is_help=True)
console = Console(stderr=True)


async def _run_until_signalled(settings: CoordinatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from coordinator.service import run_coordinator  # the web stack loads only to run

    await run_coordinator(settings, stop)


@app.command("run")
def run(
    nats: str | None = typer.Option(None, "--nats", help="NATS server URL."),
    database: str | None = typer.Option(
        None, "--database", help="SQLAlchemy URL (sqlite:///..., postgresql://...)."
    ),
    http_host: str | None = typer.Option(None, help="Console address (loopback by default)."),
    http_port: int | None = typer.Option(None, help="Console port (0: a free one)."),
    no_console: bool = typer.Option(False, "--no-console", help="Do not serve the console."),
    config: Path | None = typer.Option(None, help="TOML settings file (\\[coordinator] table)."),
) -> None:
    """Run the coordinator: ingest, fuse candidates, schedule follow-ups, serve the console.
    Console users and their tokens: `skyfleet users add NAME --role operator`."""
    settings = CoordinatorSettings.load(
        config,
        nats_url=nats,
        database_url=database,
        http_host=http_host,
        http_port=http_port,
        serve_console=False if no_console else None,
    )
    configure_logging(settings.log_level, settings.log_format)
    console.print(
        f"coordinator: nats {settings.nats_url}, database {settings.database_url}, "
        + (
            f"console http://{settings.http_host}:{settings.http_port}"
            if settings.serve_console
            else "no console"
        ),
        highlight=False,
    )
    try:
        asyncio.run(_run_until_signalled(settings))
    except (OSError, CredentialsError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    console.print("coordinator stopped.")


@app.command("migrate")
def migrate(
    database: str | None = typer.Option(None, "--database", help="SQLAlchemy URL."),
    config: Path | None = typer.Option(None, help="TOML settings file (\\[coordinator] table)."),
) -> None:
    """Create or upgrade the coordinator's database schema (Alembic) and exit."""
    settings = CoordinatorSettings.load(config, database_url=database)
    from coordinator.service import open_store

    open_store(settings.database_url).dispose()
    console.print(f"database {settings.database_url} is at the newest schema.", highlight=False)

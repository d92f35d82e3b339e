"""`skyfleet nats ...`: a development nats-server with the fleet's streams."""

import asyncio
import signal
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats, NatsServerConfig, NatsServerError, free_port
from fleetbus.streams import ensure_streams
from protos.streams import central_streams

app = typer.Typer(help="Run a local nats-server with JetStream and the fleet's streams.")
console = Console()


async def _create_central_streams(url: str) -> list[str]:
    nc = await connect(url, name="skyfleet-nats-up")
    try:
        return await ensure_streams(nc.jetstream(), central_streams())
    finally:
        await nc.close()


@app.command("up")
def up(
    port: int = typer.Option(0, help="Client port (0: a free one)."),
    monitor_port: int = typer.Option(0, help="HTTP monitoring port (0: a free one)."),
    leaf_port: int = typer.Option(0, help="Leaf-node port for sites (0: a free one)."),
    store_dir: Path = typer.Option(Path("var/nats"), help="JetStream data directory."),
    name: str = typer.Option("hub", help="Server name."),
) -> None:
    """Start a nats-server in the foreground until Ctrl-C, with the central streams."""
    config = NatsServerConfig(
        server_name=name,
        port=port or free_port(),
        monitor_port=monitor_port or free_port(),
        leaf_listen_port=leaf_port or free_port(),
        store_dir=store_dir.resolve(),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = EmbeddedNats(config)
    try:
        server.start()
        streams = asyncio.run(_create_central_streams(server.url))
    except NatsServerError as exc:
        server.stop()
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    try:
        table = Table(title="nats-server is up", show_header=False)
        table.add_row("clients", server.url)
        table.add_row("monitoring", config.monitor_url)
        table.add_row("leaf nodes", config.leaf_url or "-")
        table.add_row("data", str(config.store_dir))
        table.add_row("streams", ", ".join(streams))
        table.add_row("pid", str(server.pid))
        console.print(table)
        console.print("Press Ctrl-C to stop.", highlight=False)
        while not stop.wait(0.2):
            if not server.running:
                console.print(f"[red]nats-server exited unexpectedly[/]; log: {server.log_path}")
                raise typer.Exit(code=1)
    finally:
        server.stop()
    console.print("nats-server stopped; no process left behind.")

"""`skyfleet nats ...`: a hub nats-server on this machine, wired as a fleet's hub is."""

import asyncio
import contextlib
import signal
from functools import partial
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from fleetbus.client import connect
from fleetbus.hub import ensure_hub_streams, hub_server_config, keep_sources_flowing
from fleetbus.process_supervisor import ProcessSupervisor
from fleetbus.server import EmbeddedNats, NatsServerError
from fleetbus.tasks import cancel_and_wait, supervise

app = typer.Typer(help="Run a local hub nats-server with JetStream and the fleet's streams.")
console = Console()

STOP_GRACE_S = 10.0


def _show(server: EmbeddedNats, streams: list[str]) -> None:
    config = server.config
    table = Table(title="nats-server is up (the fleet's hub)", show_header=False)
    table.add_row("clients", server.url)
    table.add_row("monitoring", config.monitor_url)
    table.add_row("leaf nodes", config.leaf_url or "-")
    table.add_row("JetStream domain", config.jetstream_domain or "-")
    table.add_row("data", str(config.store_dir))
    table.add_row("streams", ", ".join(streams))
    table.add_row("pid", str(server.pid))
    console.print(table)
    console.print(
        "Sites join with `skyfleet site join ID --nats URL`. Press Ctrl-C to stop.",
        highlight=False,
    )


async def _serve(server: EmbeddedNats, sites: list[str]) -> None:
    """Create the hub's streams, then keep its sources flowing and the server running until
    SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(server.url, name="skyfleet-nats-up")
    try:
        js = nc.jetstream()
        await ensure_hub_streams(js, sites)
        streams = [info.config.name for info in await js.streams_info()]
        _show(server, sorted(name for name in streams if name))

        def report(component: str, reason: str) -> None:
            console.print(f"[red]{component} failed[/] ({reason}); restarting", highlight=False)

        tasks = [
            asyncio.create_task(supervise("sources", partial(keep_sources_flowing, nc))),
            asyncio.create_task(
                ProcessSupervisor(server, name="nats-server", on_restart=report).run()
            ),
        ]
        await stop.wait()
        await cancel_and_wait(tasks, timeout_s=STOP_GRACE_S)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


@app.command("up")
def up(
    port: int = typer.Option(0, help="Client port (0: a free one)."),
    monitor_port: int = typer.Option(0, help="HTTP monitoring port (0: a free one)."),
    leaf_port: int = typer.Option(0, help="Leaf-node port for sites (0: a free one)."),
    store_dir: Path = typer.Option(Path("var/nats"), help="JetStream data directory."),
    name: str = typer.Option("hub", help="Server name."),
    site: list[str] = typer.Option(
        [], "--site", help="A site whose stream the hub sources (repeat for several)."
    ),
) -> None:
    """Start a hub nats-server in the foreground until Ctrl-C: JetStream in the `hub` domain,
    a leaf-node port for sites, the central streams, stalled site sources revived, and the
    server restarted if it dies."""
    server = EmbeddedNats(
        hub_server_config(
            store_dir.resolve(),
            server_name=name,
            port=port,
            monitor_port=monitor_port,
            leaf_port=leaf_port,
        )
    )
    try:
        server.start()
        asyncio.run(_serve(server, site))
    except (NatsServerError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    finally:
        server.stop()
    console.print("nats-server stopped; no process left behind.")

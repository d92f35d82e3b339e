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
from fleetbus.hub_identity import IdentityKeeper
from fleetbus.identity import COORDINATOR_SEED_FILE, HUB_AUTH_FILE, read_seed
from fleetbus.process_supervisor import ProcessSupervisor
from fleetbus.server import EmbeddedNats, NatsServerError, tls_files
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


async def _serve(
    server: EmbeddedNats, sites: list[str], credentials: Path | None, tls_ca_file: Path | None
) -> None:
    """Create the hub's streams, then keep its sources flowing, its identities current and the
    server running until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    seed = None if credentials is None else read_seed(credentials / COORDINATOR_SEED_FILE)
    identities = None if credentials is None else IdentityKeeper(server, credentials)
    nc = await connect(server.url, name="skyfleet-nats-up", nkey_seed=seed, tls_ca_file=tls_ca_file)
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
                ProcessSupervisor(
                    server, name="nats-server", fault=identities, on_restart=report
                ).run()
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
    credentials: Path | None = typer.Option(
        None,
        "--credentials",
        help="Let in only the fleet's identities (`skyfleet fleet credentials --out DIR`); "
        "changes there apply within a second.",
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="The hub's certificate (PEM): client and leaf ports speak TLS."
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="The certificate's key (PEM)."),
    tls_ca_file: Path | None = typer.Option(
        None, "--tls-ca-file", help="The CA that signed the certificate (this command's client)."
    ),
) -> None:
    """Start a hub nats-server in the foreground until Ctrl-C: JetStream in the `hub` domain,
    a leaf-node port for sites, the central streams, stalled site sources revived, and the
    server restarted if it dies."""
    try:
        tls = tls_files(tls_cert, tls_key)
        if tls is not None and tls_ca_file is None:
            raise ValueError("--tls-cert needs --tls-ca-file: this command is the hub's client too")
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    server = EmbeddedNats(
        hub_server_config(
            store_dir.resolve(),
            server_name=name,
            port=port,
            monitor_port=monitor_port,
            leaf_port=leaf_port,
            authorization_file=None if credentials is None else credentials / HUB_AUTH_FILE,
            tls=tls,
        )
    )
    try:
        server.start()
        asyncio.run(_serve(server, site, credentials, tls_ca_file))
    except (NatsServerError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    finally:
        server.stop()
    console.print("nats-server stopped; no process left behind.")

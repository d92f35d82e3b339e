"""`skyfleet site ...`: the site agent and its operator tools."""

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import typer
from rich.console import Console

from fleetbus.client import connect
from fleetbus.hub import DEFAULT_LEAF_PORT, ensure_hub_streams, hub_server_config
from fleetbus.logs import configure_logging
from fleetbus.server import NatsServerError
from site_agent.allocator import return_large_buffers
from site_agent.settings import SiteAgentSettings
from site_agent.site_nats import DEFAULT_CLIENT_PORT, DEFAULT_MONITOR_PORT, site_server_config
from skyfleet.cli import reference_cmd

app = typer.Typer(help="Run and operate a site agent.", no_args_is_help=True)
app.add_typer(reference_cmd.app, name="reference")
console = Console(stderr=True)


def _stopping(stop: asyncio.Event) -> None:
    """Ask the agent to stop, and make sure the process ends even if a part of it hangs."""
    from site_agent.agent import EXIT_DEADLINE_S

    if not stop.is_set():
        stop.set()
        deadline = threading.Timer(EXIT_DEADLINE_S, _exit_now, args=(EXIT_DEADLINE_S,))
        deadline.daemon = True
        deadline.start()


def _exit_now(deadline_s: float) -> None:
    logging.getLogger(__name__).critical(
        "site agent still running %.0f s after stop: exiting", deadline_s
    )
    logging.shutdown()
    os._exit(1)


async def _run_agent(settings: SiteAgentSettings) -> None:
    # torch loads here, not for every CLI command
    from imaging.photometry import PhotometryError
    from imaging.quality_model import ModelLoadError
    from site_agent.agent import SiteAgent
    from site_agent.publisher import SiteStreamError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopping, stop)
    try:
        await SiteAgent(settings).run(stop)
    except ModelLoadError as exc:
        console.print(f"[red]error:[/] cannot load the quality model: {exc}")
        raise typer.Exit(code=1) from None
    except (PhotometryError, NatsServerError, SiteStreamError) as exc:
        console.print(f"[red]error:[/] {str(exc).splitlines()[0]}")
        raise typer.Exit(code=1) from None


@app.command("run")
def run(
    site_id: str | None = typer.Option(None, "--site-id", help="This site's name (e.g. la-silla)."),
    watch: Path | None = typer.Option(
        None, "--watch", help="Folder the camera writes FITS frames to."
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="State, quarantine and the site's NATS data."
    ),
    nats: str | None = typer.Option(
        None, "--nats", help="The site's NATS server URL; without it an embedded one starts."
    ),
    hub_leaf_url: str | None = typer.Option(
        None, "--hub-leaf-url", help="Hub leaf-node URL for the embedded server (nats-leaf://)."
    ),
    triton_url: str | None = typer.Option(
        None, "--triton-url", help="Score through Triton (gRPC host:port), in process if down."
    ),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Quality model repository folder."
    ),
    photometry: Path | None = typer.Option(
        None, "--photometry", help="Photometric calibration file (transparency, sky brightness)."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve /metrics on this port."
    ),
    heartbeat_interval_s: float | None = typer.Option(
        None, "--heartbeat-interval", help="Seconds between heartbeats."
    ),
    settle_s: float | None = typer.Option(
        None, "--settle", help="Seconds a file must stay unchanged to count as complete."
    ),
    polling: bool | None = typer.Option(
        None, "--polling/--inotify", help="Poll the folder (network shares) or use inotify."
    ),
    config: Path | None = typer.Option(None, "--config", help="TOML settings file, 'site' table."),
    log_level: str | None = typer.Option(
        None, "--log-level", help="DEBUG, INFO, WARNING or ERROR."
    ),
    log_format: str | None = typer.Option(None, "--log-format", help="text or json."),
) -> None:
    """Run the site agent: watch a folder, score frames, publish over NATS, until SIGTERM."""
    settings = SiteAgentSettings.load(
        config,
        site_id=site_id,
        watch_dir=watch,
        work_dir=work_dir,
        nats_url=nats,
        hub_leaf_url=hub_leaf_url,
        triton_url=triton_url,
        model_dir=model_dir,
        photometry_file=photometry,
        metrics_port=metrics_port,
        heartbeat_interval_s=heartbeat_interval_s,
        settle_s=settle_s,
        polling=polling,
        log_level=log_level,
        log_format=log_format,
    )
    configure_logging(settings.log_level, settings.log_format)
    return_large_buffers()  # before any thread starts: see site_agent/allocator.py
    asyncio.run(_run_agent(settings))


@app.command("nats-config")
def nats_config(
    site_id: str | None = typer.Option(
        None, "--site-id", help="Write the config of this site's server."
    ),
    hub: bool = typer.Option(False, "--hub", help="Write the central (hub) server's config."),
    hub_leaf_url: str | None = typer.Option(
        None, "--hub-leaf-url", help="The hub's leaf-node URL the site connects to."
    ),
    store_dir: Path = typer.Option(Path("/var/lib/skyfleet/nats"), help="JetStream data folder."),
    host: str = typer.Option("0.0.0.0", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_CLIENT_PORT, help="Client port."),
    monitor_port: int = typer.Option(DEFAULT_MONITOR_PORT, help="HTTP monitoring port."),
    leaf_port: int = typer.Option(DEFAULT_LEAF_PORT, help="Leaf-node port (hub only)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write here instead of stdout."
    ),
) -> None:
    """Print a nats-server configuration: a site's leaf server, or the hub."""
    if hub == (site_id is not None):
        console.print("[red]error:[/] give exactly one of --site-id ID or --hub")
        raise typer.Exit(code=2)
    if site_id is not None:
        config = site_server_config(
            site_id,
            store_dir,
            hub_leaf_url=hub_leaf_url,
            host=host,
            port=port,
            monitor_port=monitor_port,
        )
    else:
        config = hub_server_config(
            store_dir, host=host, port=port, monitor_port=monitor_port, leaf_port=leaf_port
        )
    text = config.render()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


async def _join(url: str, site_ids: list[str]) -> list[str]:
    nc = await connect(url, name="skyfleet-site-join")
    try:
        return await ensure_hub_streams(nc.jetstream(), site_ids)
    finally:
        await nc.close()


@app.command("join")
def join(
    site_ids: list[str] = typer.Argument(..., help="Sites whose streams the hub should source."),
    nats: str = typer.Option("nats://127.0.0.1:4222", "--nats", help="The hub's NATS URL."),
) -> None:
    """Make the hub's FLEET stream source these sites' streams (existing sources are kept)."""
    try:
        sources = asyncio.run(_join(nats, site_ids))
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"FLEET sources: {', '.join(sources)}")

"""`skyfleet site ...`: the site agent and its operator tools."""

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from fleetbus.client import ONE_SHOT_GIVE_UP_S, BusUnreachableError, connect
from fleetbus.hub import DEFAULT_LEAF_PORT, ensure_hub_streams, hub_server_config
from fleetbus.identity import HUB_AUTH_FILE, CredentialsError, read_seed
from fleetbus.logs import configure_logging
from fleetbus.server import NatsServerError, tls_files
from site_agent.allocator import return_large_buffers
from site_agent.settings import SiteAgentSettings
from site_agent.site_nats import DEFAULT_CLIENT_PORT, DEFAULT_MONITOR_PORT, site_server_config
from skyfleet.cli import reference_cmd

LOOPBACK = "127.0.0.1"
"""A site's server serves only the agent on the same computer."""
ALL_INTERFACES = "0.0.0.0"
"""The hub serves sites and central services from other machines."""

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
    hub_nkey_file: Path | None = typer.Option(
        None, "--hub-nkey-file", help="The site's seed file: its link to the hub proves who it is."
    ),
    hub_ca_file: Path | None = typer.Option(
        None, "--hub-ca-file", help="The CA of a hub that speaks TLS: the link verifies the hub."
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
        hub_nkey_file=hub_nkey_file,
        hub_ca_file=hub_ca_file,
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
    if settings.hub_nkey_file is not None:
        try:
            read_seed(settings.hub_nkey_file)  # one clear line now, not a failure at start-up
        except CredentialsError as exc:
            _fail(str(exc))
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
    host: str | None = typer.Option(
        None, help="Address to listen on (default: 127.0.0.1 for a site, 0.0.0.0 for the hub)."
    ),
    credentials: Path | None = typer.Option(
        None, "--credentials", help="Hub only: the folder of `skyfleet fleet credentials`."
    ),
    nkey_file: Path | None = typer.Option(
        None, "--nkey-file", help="Site only: the site's seed file (site-ID.nk)."
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="Hub only: its certificate (PEM); with --tls-key, TLS only."
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Hub only: its key (PEM)."),
    hub_ca_file: Path | None = typer.Option(
        None, "--hub-ca-file", help="Site only: the CA of a hub that speaks TLS."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a bus without identities (a throwaway local bus only)."
    ),
    port: int = typer.Option(DEFAULT_CLIENT_PORT, help="Client port."),
    monitor_port: int = typer.Option(DEFAULT_MONITOR_PORT, help="HTTP monitoring port."),
    leaf_port: int = typer.Option(DEFAULT_LEAF_PORT, help="Leaf-node port (hub only)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write here instead of stdout."
    ),
) -> None:
    """Print a nats-server configuration: a site's leaf server, or the hub.

    The hub lets in only the fleet's identities (`--credentials`); a site's link to it
    authenticates with the site's seed (`--nkey-file`). Without them the bus is open to anyone
    who can reach it, which `--insecure` must say out loud.
    """
    if hub == (site_id is not None):
        _fail("give exactly one of --site-id ID or --hub", code=2)
    try:
        if site_id is not None:
            config = site_server_config(
                site_id,
                store_dir,
                hub_leaf_url=hub_leaf_url,
                host=host or LOOPBACK,
                port=port,
                monitor_port=monitor_port,
                leaf_nkey_seed=_site_seed(nkey_file, hub_leaf_url, insecure),
                hub_ca_file=hub_ca_file,
            )
        else:
            config = hub_server_config(
                store_dir,
                host=host or ALL_INTERFACES,
                port=port,
                monitor_port=monitor_port,
                leaf_port=leaf_port,
                authorization_file=_hub_users(credentials, insecure),
                tls=tls_files(tls_cert, tls_key),
            )
        text = config.render()
    except (CredentialsError, NatsServerError, ValueError) as exc:
        _fail(str(exc))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def _fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=code)


def _site_seed(nkey_file: Path | None, hub_leaf_url: str | None, insecure: bool) -> str | None:
    if nkey_file is not None:
        return read_seed(nkey_file)
    if hub_leaf_url is not None and not insecure:
        _fail("a site's link to the hub needs the site's --nkey-file (or --insecure)", code=2)
    return None


def _hub_users(credentials: Path | None, insecure: bool) -> Path | None:
    if credentials is not None:
        return credentials / HUB_AUTH_FILE
    if not insecure:
        _fail("the hub needs --credentials DIR (skyfleet fleet credentials) or --insecure", code=2)
    console.print(
        "[yellow]warning:[/] --insecure: anyone who reaches this hub may publish as any site",
        highlight=False,
    )
    return None


async def _join(
    url: str, site_ids: list[str], nkey_file: Path | None, tls_ca_file: Path | None
) -> list[str]:
    seed = read_seed(nkey_file) if nkey_file is not None else None
    nc = await connect(
        url,
        name="skyfleet-site-join",
        nkey_seed=seed,
        tls_ca_file=tls_ca_file,
        give_up_after_s=ONE_SHOT_GIVE_UP_S,
    )
    try:
        return await ensure_hub_streams(nc.jetstream(), site_ids)
    finally:
        await nc.close()


@app.command("join")
def join(
    site_ids: list[str] = typer.Argument(..., help="Sites whose streams the hub should source."),
    nats: str = typer.Option("nats://127.0.0.1:4222", "--nats", help="The hub's NATS URL."),
    nkey_file: Path | None = typer.Option(
        None, "--nkey-file", help="The coordinator's seed file where the hub has identities."
    ),
    tls_ca_file: Path | None = typer.Option(
        None, "--tls-ca-file", help="The CA of a hub that speaks TLS."
    ),
) -> None:
    """Make the hub's FLEET stream source these sites' streams (existing sources are kept)."""
    try:
        sources = asyncio.run(_join(nats, site_ids, nkey_file, tls_ca_file))
    except BusUnreachableError as exc:
        _fail(str(exc))
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"FLEET sources: {', '.join(sources)}")

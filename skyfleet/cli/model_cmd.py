"""`skyfleet model ...`: the versions in a model repository, releasing one (canary, then the
fleet), rolling sites back to a version, the versions the sites serve, and collecting the sites'
samples and the operators' labels for retraining. The work is `training.release`,
`training.fleet_samples` and `training.fleet_labels`."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from nats.aio.client import Client
from rich.console import Console
from rich.table import Table

from fleetbus.client import ONE_SHOT_GIVE_UP_S, BusUnreachableError, connect
from fleetbus.identity import CredentialsError, read_seed

app = typer.Typer(
    help="Model versions at the sites: release, roll back, status.", no_args_is_help=True
)
console = Console()
T = TypeVar("T")

REPOSITORY = typer.Option(..., "--repository", help="The model repository (Triton layout).")
MODEL = typer.Option("quality", "--model", help="The model's name in the repository.")
NATS = typer.Option("nats://127.0.0.1:4222", "--nats", help="The hub's NATS URL.")
NKEY_FILE = typer.Option(None, "--nkey-file", help="The coordinator's seed file (hub identities).")
TLS_CA = typer.Option(None, "--tls-ca-file", help="The CA of a hub that speaks TLS.")
URI = typer.Option(
    None, "--repository-uri", help="Where sites fetch it (default: the repository as file://)."
)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def _on_hub(
    nats: str,
    nkey_file: Path | None,
    tls_ca_file: Path | None,
    work: Callable[[Client], Awaitable[T]],
) -> T:
    """Run `work` with a connection to the hub; one clear line when it cannot be done."""
    from imaging.quality_model import ModelLoadError
    from training.release import ReleaseError

    async def run() -> T:
        seed = read_seed(nkey_file) if nkey_file else None
        nc = await connect(
            nats,
            name="skyfleet-model",
            nkey_seed=seed,
            tls_ca_file=tls_ca_file,
            give_up_after_s=ONE_SHOT_GIVE_UP_S,
        )
        try:
            return await work(nc)
        finally:
            await nc.close()

    try:
        return asyncio.run(run())
    except (BusUnreachableError, CredentialsError, ReleaseError, ModelLoadError, ValueError) as exc:
        _fail(str(exc))


def _sites(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


@app.command("list")
def list_versions(repository: Path = REPOSITORY, model: str = MODEL) -> None:
    """The versions of a model in a repository, with their sha256 and whether they are signed."""
    from imaging.quality_model import ModelLoadError
    from training.release import repository_versions

    try:
        versions = repository_versions(repository, model)
    except ModelLoadError as exc:
        _fail(str(exc))
    table = Table(title=f"{model} in {repository}")
    for column in ("version", "sha256", "signed", "path"):
        table.add_column(column)
    for v in versions:
        table.add_row(v.version, v.sha256[:16] + "…", "yes" if v.signed else "no", v.path)
    console.print(table)


@app.command("release")
def release(
    version: str = typer.Argument(..., help="The version to release."),
    canary: str = typer.Option(..., "--canary", help="Canary site(s), comma-separated."),
    fleet: str = typer.Option("", "--fleet", help="The rest of the fleet, comma-separated."),
    previous: str | None = typer.Option(
        None, "--previous", help="The version served now: sent to the canaries again on failure."
    ),
    healthy_frames: int = typer.Option(25, help="Frames the canary scores with it first."),
    soak_timeout: float = typer.Option(3600.0, help="Seconds the canary has to show them."),
    repository: Path = REPOSITORY,
    model: str = MODEL,
    repository_uri: str | None = URI,
    nats: str = NATS,
    nkey_file: Path | None = NKEY_FILE,
    tls_ca_file: Path | None = TLS_CA,
) -> None:
    """Release a version: the canary first, the fleet once the canary is healthy with it."""
    from training.release import RolloutPlan, roll_out

    plan = RolloutPlan(
        canary=_sites(canary),
        fleet=_sites(fleet),
        healthy_frames=healthy_frames,
        soak_timeout_s=soak_timeout,
    )
    console.print(f"releasing {model} version {version} to canary {', '.join(plan.canary)} …")
    result = _on_hub(
        nats,
        nkey_file,
        tls_ca_file,
        lambda nc: roll_out(
            nc.jetstream(),
            repository,
            model,
            version,
            plan,
            repository_uri=repository_uri,
            previous=previous,
        ),
    )
    colour = "green" if result.outcome == "fleet" else "red"
    console.print(f"[{colour}]{result.outcome}[/]: {result.reason}", highlight=False)
    console.print(f"released to: {', '.join(result.released_to)}", highlight=False)
    if result.outcome != "fleet":
        raise typer.Exit(code=1)


@app.command("rollback")
def rollback(
    version: str = typer.Argument(..., help="The version the sites go back to."),
    sites: str = typer.Option(..., "--sites", help="Sites, comma-separated."),
    repository: Path = REPOSITORY,
    model: str = MODEL,
    repository_uri: str | None = URI,
    nats: str = NATS,
    nkey_file: Path | None = NKEY_FILE,
    tls_ca_file: Path | None = TLS_CA,
) -> None:
    """Send these sites back to a version (they still verify it and switch between frames)."""
    from training.release import announce

    sent = _on_hub(
        nats,
        nkey_file,
        tls_ca_file,
        lambda nc: announce(
            nc.jetstream(), repository, model, version, _sites(sites), repository_uri=repository_uri
        ),
    )
    console.print(f"{model} version {version} sent to {', '.join(m.site_id for m in sent)}")


@app.command("status")
def status(
    sites: str = typer.Option(..., "--sites", help="Sites, comma-separated."),
    nats: str = NATS,
    nkey_file: Path | None = NKEY_FILE,
    tls_ca_file: Path | None = TLS_CA,
) -> None:
    """The version each site serves, from its latest heartbeat at the hub."""
    from training.release import served_versions

    beats = _on_hub(
        nats, nkey_file, tls_ca_file, lambda nc: served_versions(nc.jetstream(), _sites(sites))
    )
    table = Table(title="models served")
    for column in ("site", "version", "heartbeat at"):
        table.add_column(column)
    for site_id, beat in beats.items():
        if beat is None:
            table.add_row(site_id, "-", "no heartbeat")
        else:
            table.add_row(
                site_id, beat.model_version or "-", beat.created_at.isoformat(timespec="seconds")
            )
    console.print(table)


@app.command("samples")
def samples(
    to: Path = typer.Option(..., "--to", help="Folder for `skyfleet train fleet --samples`."),
    sites: str = typer.Option("", "--sites", help="Sites, comma-separated."),
    labels_db: str | None = typer.Option(
        None,
        "--labels-db",
        help="The coordinator's database: its operators' labels on detections become samples, "
        "and on frames label the sites' samples of those frames.",
    ),
    nats: str = NATS,
    nkey_file: Path | None = NKEY_FILE,
    tls_ca_file: Path | None = TLS_CA,
) -> None:
    """Copy the sites' samples (their Object Store buckets) into a folder for retraining, and
    write the operators' labels from the console there as samples that weigh most."""
    from training.fleet_samples import download_site_samples

    if not _sites(sites) and labels_db is None:
        _fail("nothing to collect: give --sites, --labels-db or both")
    if _sites(sites):
        result = _on_hub(
            nats, nkey_file, tls_ca_file, lambda nc: download_site_samples(nc, _sites(sites), to)
        )
        for site_id, count in result.objects.items():
            console.print(f"{site_id}: {count // 2} samples → {to / site_id}", highlight=False)
        for site_id, reason in result.unreachable.items():
            console.print(f"[yellow]{site_id}: not read[/] ({reason})", highlight=False)
    if labels_db is not None:
        _operator_samples(labels_db, to)


def _operator_samples(database_url: str, to: Path) -> None:
    """The operators' labels on detections, written as real/bogus samples into `to`, and their
    labels on frames, applied to the sites' quality samples of those frames there."""
    from pydantic import ValidationError
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from coordinator.store.engine import open_engine
    from skyfleet.operator_labels import labelled_detections, labelled_frames
    from training.fleet_labels import apply_frame_labels, write_operator_samples

    try:
        url = make_url(database_url)
        if url.drivername.startswith("sqlite") and not Path(url.database or "").is_file():
            _fail(f"no coordinator database at {url.database}: --labels-db names its URL")
        engine = open_engine(database_url)
        try:
            frames = labelled_frames(engine)  # first: a store without labels writes nothing
            written = write_operator_samples(to, labelled_detections(engine))
            applied = apply_frame_labels(to, frames)
        finally:
            engine.dispose()
    except (SQLAlchemyError, ValidationError) as exc:
        _fail(f"operators' labels not read from the coordinator's database: {exc}")
    console.print(
        f"operators' labels: {written.written} samples {written.by_label} → {to}", highlight=False
    )
    if written.unusable:
        console.print(
            f"[yellow]{len(written.unusable)} labels have no sample[/]: "
            + "; ".join(f"{s.path}: {s.reason}" for s in written.unusable[:5]),
            highlight=False,
        )
    console.print(
        f"operators' frame labels: {applied.applied} quality samples {applied.by_label}",
        highlight=False,
    )
    if applied.without_sample:
        console.print(
            f"[yellow]{len(applied.without_sample)} frame labels have no site sample[/] "
            "(the centre keeps no frame tensor): "
            + ", ".join(sha[:12] for sha in applied.without_sample[:5]),
            highlight=False,
        )

"""`skyfleet fleet ...`: the fleet's identities (one nkey per site and per central role)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleetbus.identity import (
    RELEASE_SEED_FILE,
    CredentialsError,
    FleetIdentities,
    issue_credentials,
    revoke_site,
)

app = typer.Typer(help="Fleet identities: who may connect to the hub, and as what.")
console = Console()

CredentialsDir = Annotated[
    Path, typer.Option("--out", help="The credentials folder (seeds and the hub's users).")
]


def _table(folder: Path) -> Table:
    table = Table(title=f"fleet identities in {folder}")
    table.add_column("identity")
    table.add_column("role")
    table.add_column("public key")
    table.add_column("seed file")
    for identity in FleetIdentities.load(folder).identities:
        seed = folder / f"{identity.name}.nk"
        table.add_row(
            identity.name, identity.role, identity.public_key, str(seed) if seed.exists() else "-"
        )
    return table


@app.command("credentials")
def credentials(
    out: CredentialsDir,
    site: Annotated[list[str], typer.Option("--site", help="A site id (repeat for several).")],
) -> None:
    """Create keys for the central roles and these sites, keeping every key already in OUT.

    Writes one seed file per identity (OUT/<name>.nk, readable by its owner only: copy each
    site's to its site and nowhere else), OUT/identities.json (public keys) and
    OUT/hub-auth.conf, the hub's users and permissions. A running `skyfleet nats up
    --credentials OUT` applies the change within a second.
    """
    try:
        issued = issue_credentials(out, site)
    except CredentialsError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(_table(out))
    console.print(
        f"created: {', '.join(issued.created) or 'nothing'}; kept: {', '.join(issued.kept) or '-'}"
        f"\nhub users: {issued.hub_auth}"
        f"\nmodel release key: {out / RELEASE_SEED_FILE} (sites check models with "
        f"SKYFLEET_SITE_RELEASE_PUBLIC_KEY={FleetIdentities.load(out).release_public_key})",
        highlight=False,
    )


@app.command("revoke")
def revoke(
    out: CredentialsDir,
    site: Annotated[str, typer.Option("--site", help="The site to revoke.")],
) -> None:
    """Revoke a site: its key is deleted and the hub's users rewritten. A running `skyfleet nats
    up --credentials OUT` restarts the hub to end the site's link (the others are back in
    seconds, nothing lost)."""
    try:
        hub_auth = revoke_site(out, site)
    except CredentialsError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"site {site} revoked; hub users: {hub_auth}", highlight=False)


@app.command("sign-model")
def sign_model(
    version_dir: Annotated[Path, typer.Argument(help="A model version folder (manifest.json).")],
    out: CredentialsDir,
) -> None:
    """Sign a model version with the fleet's release key (OUT/release.nk): sites given the
    public key load only signed models."""
    from imaging.model_signature import ModelSignatureError, sign_version

    seed_file = out / RELEASE_SEED_FILE
    try:
        seed = seed_file.read_text()
        path = sign_version(version_dir, seed)
    except OSError as exc:
        console.print(f"[red]error:[/] {exc.filename}: {exc.strerror}", highlight=False)
        raise typer.Exit(code=1) from None
    except ModelSignatureError as exc:
        console.print(f"[red]error:[/] {seed_file}: {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"signed: {path}", highlight=False)

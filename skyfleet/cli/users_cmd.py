"""`skyfleet users ...`: who may use the ops console, and as what (viewer, operator, admin).

A user's token is printed once, when it is issued; the coordinator's database keeps only its
SHA-256 (`coordinator.store.users`), so a lost token is replaced, never recovered.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from coordinator.settings import CoordinatorSettings
from coordinator.store.roles import Role

app = typer.Typer(help="Console users: add, list, revoke.", no_args_is_help=True)
console = Console(stderr=True)

Database = Annotated[
    str | None, typer.Option("--database", help="SQLAlchemy URL of the coordinator's database.")
]
Config = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (\\[coordinator] table).")
]


@contextmanager
def _store(database: str | None, config: Path | None) -> Iterator[Connection]:
    """A transaction on the coordinator's database, brought to the newest schema first."""
    from coordinator.store.engine import open_engine  # SQLAlchemy loads only when needed
    from coordinator.store.migrations import upgrade_to_head

    settings = CoordinatorSettings.load(config, database_url=database)
    engine = open_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user's name (a login name or an e-mail).")],
    role: Annotated[Role, typer.Option("--role", help="What the user may do.")],
    database: Database = None,
    config: Config = None,
) -> None:
    """Add a console user and print its token, this once (only its SHA-256 is kept).

    A revoked user of that name comes back with the new token and role."""
    from coordinator.store.users import UserError, add_user
    from protos.base import utc_now

    try:
        with _store(database, config) as conn:
            token = add_user(conn, name, role, utc_now())
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(
        f"user {name} added as {role.value}. Its token, shown only this once "
        "(log in to the console with the name and the token, or send it as "
        "'Authorization: Bearer TOKEN'):",
        highlight=False,
    )
    typer.echo(token)  # alone on stdout, so a script can take it: TOKEN=$(skyfleet users add ...)


@app.command("list")
def list_(database: Database = None, config: Config = None) -> None:
    """List the console users and their roles (never their tokens)."""
    from coordinator.store.users import list_users

    with _store(database, config) as conn:
        users = list_users(conn)
    table = Table(title="console users")
    for column in ("name", "role", "added (UTC)", "state"):
        table.add_column(column)
    for user in users:
        state = "active" if user.revoked_at is None else f"revoked {user.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(user.name, user.role.value, f"{user.created_at:%Y-%m-%d %H:%M}", state)
    Console().print(table)
    if not users:
        console.print("no console users yet: skyfleet users add NAME --role operator")


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The user to revoke.")],
    database: Database = None,
    config: Config = None,
) -> None:
    """Revoke a console user: its token stops working and its sessions end at once."""
    from coordinator.store.users import UserError, revoke_user
    from protos.base import utc_now

    try:
        with _store(database, config) as conn:
            revoke_user(conn, name, utc_now())
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"user {name} revoked: its token and its sessions no longer work.")

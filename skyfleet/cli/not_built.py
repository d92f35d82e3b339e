"""The one message for capabilities that are not built yet, so the CLI never pretends."""

import typer
from rich.console import Console


def not_built(what: str, issue: int) -> None:
    """Say plainly that a capability is missing (tracked in `issue`) and exit with status 2."""
    Console(stderr=True).print(
        f"[yellow]{what} is not built yet[/] (issue #{issue}); nothing was done."
    )
    raise typer.Exit(code=2)

"""`skyfleet train ...`: training runs on Ray Train."""

import typer

from skyfleet.cli.not_built import not_built

app = typer.Typer(help="Train fleet models on Ray Train.", no_args_is_help=True)


@app.command("quality")
def quality() -> None:
    """Train the frame-quality classifier."""
    not_built("Quality-model training", 3)

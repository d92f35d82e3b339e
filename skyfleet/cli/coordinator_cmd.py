"""`skyfleet coordinator ...`: the central coordinator and ops console."""

import typer

from skyfleet.cli.not_built import not_built

app = typer.Typer(help="Run the central coordinator and ops console.", no_args_is_help=True)


@app.command("run")
def run() -> None:
    """Run the coordinator: ingest, fuse candidates, schedule follow-ups, serve the console."""
    not_built("The coordinator", 6)

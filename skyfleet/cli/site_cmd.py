"""`skyfleet site ...`: the site agent and its operator tools."""

import typer

from skyfleet.cli.not_built import not_built

app = typer.Typer(help="Run and operate a site agent.", no_args_is_help=True)


@app.command("run")
def run() -> None:
    """Run the site agent: watch a folder, score frames, publish over NATS."""
    not_built("The site agent", 4)

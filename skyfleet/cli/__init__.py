"""The `skyfleet` command: one typer app with a sub-command per capability."""

from skyfleet.cli.main import app

__all__ = ["app"]

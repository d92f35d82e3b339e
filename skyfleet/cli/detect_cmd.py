"""`skyfleet detect`: difference imaging and candidate detection on two files."""

from pathlib import Path

import typer

from skyfleet.cli.not_built import not_built


def detect(
    new: Path = typer.Argument(..., help="The new frame (FITS)."),
    reference: Path = typer.Option(..., "--reference", help="The reference frame (FITS)."),
    json_out: bool = typer.Option(False, "--json", help="Print candidates as JSON."),
) -> None:
    """Find transient candidates in NEW against a REFERENCE frame."""
    not_built("Transient detection", 5)

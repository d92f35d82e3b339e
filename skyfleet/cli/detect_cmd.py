"""`skyfleet detect`: difference imaging and candidate detection on two files.

It runs the site's own path (`imaging.transients.search`): the reference file is made into a
one-frame reference, the new frame is aligned, PSF-matched, subtracted and searched, and the
survivors of the real/bogus model are printed as a table or as `TransientCandidate` JSON lines.
A frame that cannot be searched prints why and exits with status 1.
"""

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR


def detect(
    new: Path = typer.Argument(..., help="The new frame (FITS)."),
    reference: Path = typer.Option(..., "--reference", help="The reference frame (FITS)."),
    json_out: bool = typer.Option(False, "--json", help="Print candidates as JSON."),
    model_dir: Path = typer.Option(
        SHIPPED_REALBOGUS_MODEL_DIR,
        "--model",
        help="Real/bogus model folder (version or repository).",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Real/bogus score to publish (default: the site's, 0.9).",
    ),
    site_id: str = typer.Option("local", "--site-id", help="Site name put on the messages."),
) -> None:
    """Find transient candidates in NEW against a REFERENCE frame."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    from imaging.fits_reader import FrameError, read_frame
    from imaging.transients.config import TransientSearchSettings
    from imaging.transients.realbogus import RealBogusLoadError, RealBogusModel
    from imaging.transients.references import ReferenceError, build_reference
    from imaging.transients.search import search_transients

    try:
        model = RealBogusModel.load(model_dir)
        new_frame = read_frame(new)
        ref = build_reference([read_frame(reference)])
    except (FrameError, RealBogusLoadError, ReferenceError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    settings = TransientSearchSettings()
    if threshold is not None:
        settings = settings.model_copy(update={"real_bogus_threshold": threshold})
    outcome = search_transients(new_frame, ref, site_id=site_id, model=model, settings=settings)
    if not outcome.search.attempted:
        errors.print(f"[yellow]not searched:[/] {escape(outcome.search.skipped_reason or '')}")
        raise typer.Exit(code=1)
    if json_out:
        for candidate in outcome.candidates:
            typer.echo(candidate.model_dump_json())
        return
    table = Table(title=f"{len(outcome.candidates)} candidate(s) in {new.name}")
    for column in ("x", "y", "RA", "Dec", "flux (ADU)", "S/N", 'FWHM"', "real/bogus", 'ref src"'):
        table.add_column(column, justify="right")
    for c in outcome.candidates:
        table.add_row(
            f"{c.x_px:.1f}",
            f"{c.y_px:.1f}",
            f"{c.ra_deg:.5f}",
            f"{c.dec_deg:+.5f}",
            f"{c.flux_adu:.1f} ± {c.flux_err_adu:.1f}",
            f"{c.snr:.1f}",
            "-" if c.fwhm_arcsec is None else f"{c.fwhm_arcsec:.2f}",
            f"{c.real_bogus:.2f}",
            "-"
            if c.nearest_reference_source_arcsec is None
            else f"{c.nearest_reference_source_arcsec:.1f}",
        )
    Console().print(table)

"""`skyfleet site reference ...`: build and list a site's reference images."""

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Build and list the site's reference images.", no_args_is_help=True)

STORE_HELP = "Folder of the site's references (one sub-folder per field)."


@app.command("build")
def build(
    files: list[Path] = typer.Argument(..., help="Good frames of one field (FITS)."),
    store: Path = typer.Option(Path("var/site-local/references"), "--store", help=STORE_HELP),
    field_id: str | None = typer.Option(None, "--field", help="Field name (default: from WCS)."),
) -> None:
    """Combine good frames of one field into its reference (replacing the stored one)."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    from imaging.fits_reader import FrameError, read_frame
    from imaging.transients.reference_store import ReferenceStore
    from imaging.transients.references import ReferenceError, build_reference

    try:
        frames = [read_frame(path) for path in files]
        reference = build_reference(frames, field_id)
    except (FrameError, ReferenceError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    folder = ReferenceStore(store).save(reference, frames)
    info = reference.info
    Console().print(
        f"reference [bold]{info.field_id}[/] from {len(info.members)} frame(s): "
        f"FWHM {info.fwhm_px:.2f} px, noise {info.noise_adu:.2f} ADU, {info.star_count} stars "
        f"-> {escape(str(folder))}"
    )


@app.command("list")
def list_references(
    store: Path = typer.Option(Path("var/site-local/references"), "--store", help=STORE_HELP),
) -> None:
    """List the stored references."""
    from imaging.transients.reference_store import ReferenceStore

    infos = ReferenceStore(store).infos()
    table = Table(title=f"{len(infos)} reference(s) in {store}")
    table.add_column("field", no_wrap=True)
    for column in ("RA", "Dec", "size", "frames", "FWHM px", "noise ADU", "built"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            info.field_id,
            f"{info.ra_deg:.4f}",
            f"{info.dec_deg:+.4f}",
            f"{info.width_px}x{info.height_px}",
            str(len(info.members)),
            f"{info.fwhm_px:.2f}",
            f"{info.noise_adu:.2f}",
            info.built_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)

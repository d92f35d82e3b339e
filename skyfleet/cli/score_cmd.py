"""`skyfleet score`: the quality verdict on FITS files, as a table or as FrameScore JSON lines."""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from protos.base import SITE_ID_PATTERN
from protos.frames import TransparencyReference

if TYPE_CHECKING:
    from imaging.photometry import PhotometricCalibration
    from imaging.quality_model import QualityModel
    from imaging.scoring import FileResult
    from protos import FrameScore

console = Console()
LABEL_STYLES = {"good": "green", "medium": "yellow", "bad": "red"}


def score(
    files: list[Path] = typer.Argument(
        ..., help="FITS files to score (.fits, .fit, .fits.fz, .fits.gz, .fits.bz2)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one FrameScore JSON document per line instead of a table."
    ),
    model_dir: Path = typer.Option(
        SHIPPED_QUALITY_MODEL_DIR,
        "--model",
        help="Model repository (Triton layout) or version folder.",
    ),
    site_id: str = typer.Option("local", "--site-id", help="Site name put on the messages."),
    pixel_scale_arcsec: float | None = typer.Option(
        None, "--pixel-scale", min=0.001, help="Pixel scale in arcsec/px (default: from the WCS)."
    ),
    saturation_adu: float | None = typer.Option(
        None, "--saturation", min=1.0, help="Saturation level in ADU (default: from the header)."
    ),
    photometry_file: Path | None = typer.Option(
        None,
        "--photometry",
        help="The camera's photometric calibration (JSON/TOML): adds transparency from "
        "catalogue stars and sky brightness, which floor the verdict.",
    ),
    calibration_dir: Path | None = typer.Option(
        None,
        "--calibration",
        help="A site's calibration folder (its work folder's calibration/): the master bias, "
        "dark and flat that fit each frame are applied before scoring.",
    ),
    field_references: Path | None = typer.Option(
        None,
        "--field-references",
        help="A folder of the site's own star lists per field (a site agent's "
        "field-references/, or a new folder): transparency relative to the clearest frame "
        "of each field, where no catalogue gives it (the first frame of a field builds it).",
    ),
) -> None:
    """Score FITS frames: label, confidence, probabilities, image metrics and reasons.

    Every file is processed; one that cannot be read, or is not a night-sky frame, is reported
    on stderr and the exit status is 1 if any file failed. Bias, dark and flat frames are named
    on stderr ("calibration frame: bias (IMAGETYP=...)") and not graded.
    """
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if not re.fullmatch(SITE_ID_PATTERN, site_id):
        errors.print(
            f"[red]error:[/] --site-id must be lower-case letters, digits and '-', "
            f"got {escape(repr(site_id))}"
        )
        raise typer.Exit(code=2)

    model, photometry = _model_and_photometry(model_dir, photometry_file, errors)
    from imaging.calibration_store import CalibrationStore
    from imaging.field_reference import SiteReferences
    from imaging.scoring import score_files

    if calibration_dir is not None and not calibration_dir.is_dir():
        errors.print(f"[red]error:[/] --calibration {escape(str(calibration_dir))}: no such folder")
        raise typer.Exit(code=2)
    calibration = CalibrationStore(calibration_dir) if calibration_dir is not None else None

    results = score_files(
        files,
        model,
        site_id=site_id,
        pixel_scale_arcsec=pixel_scale_arcsec,
        saturation_adu=saturation_adu,
        photometry=photometry,
        calibration=calibration,
        references=SiteReferences(field_references) if field_references is not None else None,
    )
    scores, failed = _report(results, as_json=as_json, errors=errors)
    if scores:
        _print_scores(scores, model_name=f"{model.ref.name} {model.ref.version}")
    if failed:
        raise typer.Exit(code=1)


def _model_and_photometry(
    model_dir: Path, photometry_file: Path | None, errors: Console
) -> tuple["QualityModel", "PhotometricCalibration | None"]:
    """The quality model and the camera's photometric calibration, or one error line and exit
    status 2. torch, astropy and sep load here, not for every command."""
    from imaging.photometry import PhotometricCalibration, PhotometryError
    from imaging.quality_model import ModelLoadError, QualityModel

    try:
        model = QualityModel.load(model_dir)
        photometry = (
            PhotometricCalibration.load(photometry_file) if photometry_file is not None else None
        )
    except (ModelLoadError, PhotometryError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    return model, photometry


def _report(
    results: Iterable["FileResult"], *, as_json: bool, errors: Console
) -> tuple[list["FrameScore"], int]:
    """Print each file's outcome as it comes (rejections, calibration frames and calibration
    notes on stderr; JSON scores on stdout) and return the scores for the table and how many
    files failed."""
    from imaging.file_names import printable_name
    from imaging.frame_kind import FrameClass
    from protos import FrameRejected

    scores: list[FrameScore] = []
    failed = 0
    for result in results:
        shown = escape(printable_name(result.path))
        for note in result.notes:
            errors.print(f"[yellow]calibration[/] {shown}: {escape(note)}")
        if isinstance(result.outcome, FrameClass):
            errors.print(f"[cyan]not graded[/] {shown}: {escape(result.outcome.describe())}")
        elif isinstance(result.outcome, FrameRejected):
            failed += 1
            errors.print(f"[red]rejected[/] {escape(result.outcome.message)}")
        elif as_json:
            print(result.outcome.model_dump_json(), flush=True)
        else:
            scores.append(result.outcome)
    return scores, failed


def _print_scores(scores: list["FrameScore"], model_name: str) -> None:
    """A table of verdicts and metrics, one row per frame, then each frame's reasons."""
    show_photometry = any(
        item.metrics.transparency is not None or item.metrics.sky_brightness_mag_arcsec2
        for item in scores
    )
    table = Table(title=f"Frame quality (model {model_name})", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("file", overflow="fold", min_width=12)
    table.add_column("verdict\n[dim]good medium bad[/]")
    for column in ("FWHM″", "ellip.", "sources", "bkg ADU", "sat."):
        table.add_column(column, justify="right")
    if show_photometry:
        table.add_column("transp.", justify="right")
        table.add_column("sky\nmag/″²", justify="right")
    for item in scores:
        metrics, p = item.metrics, item.probabilities
        row = [
            escape(item.frame.file_name),
            f"[{LABEL_STYLES[item.label.value]}]{item.label.value}[/] {item.confidence:.2f}\n"
            f"[dim]{p.good:.2f} {p.medium:.2f} {p.bad:.2f}[/]",
            _optional(metrics.fwhm_arcsec, "{:.2f}"),
            _optional(metrics.ellipticity, "{:.2f}"),
            str(metrics.source_count),
            f"{metrics.background_adu:.0f}±{metrics.background_rms_adu:.1f}",
            f"{metrics.saturated_fraction:.1%}",
        ]
        if show_photometry:
            transparency = _optional(metrics.transparency, "{:.2f}")
            if metrics.transparency_error is not None:
                transparency += f"±{metrics.transparency_error:.2f}"
            if metrics.transparency_reference is TransparencyReference.SITE_REFERENCE:
                transparency += " [dim]rel.[/]"
            row.append(transparency)
            row.append(_optional(metrics.sky_brightness_mag_arcsec2, "{:.2f}"))
        table.add_row(*row)
    console.print(table)
    for item in scores:
        for reason in item.reasons:
            console.print(
                f"{escape(item.frame.file_name)}: {escape(reason.message)}", highlight=False
            )


def _optional(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)

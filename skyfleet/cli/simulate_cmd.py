"""`skyfleet simulate`: write simulated FITS frames (a labelled set, or reference/new pairs)."""

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from protos import QualityLabel
from protos.base import SITE_ID_PATTERN

if TYPE_CHECKING:
    from training.simulator import FrameTruth, SimCamera

console = Console()
LABEL_CHOICES = ("good", "medium", "bad", "mixed")


CAMERA_OPTIONS = {
    "width_px": "--width",
    "height_px": "--height",
    "pixel_scale_arcsec": "--pixel-scale",
    "exptime_s": "--exptime",
}


def _option_errors(
    count: int, label: str, site: str, pair: bool, transients: int, hosted: float
) -> list[str]:
    """What is wrong with the options that are not the camera's, in the user's terms."""
    errors = []
    if count < 1:
        errors.append(f"--count must be at least 1, got {count}")
    if label not in LABEL_CHOICES:
        errors.append(f"--label must be one of {', '.join(LABEL_CHOICES)}, got {label!r}")
    if not re.fullmatch(SITE_ID_PATTERN, site):
        errors.append(f"--site must be lower-case letters, digits and '-', got {site!r}")
    if pair and transients < 0:
        errors.append(f"--transients must be 0 or more, got {transients}")
    if not 0.0 <= hosted <= 1.0:
        errors.append(f"--hosted must be a fraction from 0 to 1, got {hosted}")
    if pair and label != "mixed":
        errors.append("--label does not apply to --pair (pairs are good frames)")
    return errors


def _camera(width: int, height: int, pixel_scale: float, exptime: float) -> "SimCamera":
    """The simulated camera; a bad option ends the command with one line naming it."""
    from pydantic import ValidationError

    from training.simulator import SimCamera  # astropy and scipy load here, not for every command

    try:
        return SimCamera(
            width_px=width, height_px=height, pixel_scale_arcsec=pixel_scale, exptime_s=exptime
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = CAMERA_OPTIONS[str(error["loc"][0])]
        _fail(f"{option}: {error['msg'].lower()}, got {error['input']}")


def _fail(message: str, code: int = 2) -> NoReturn:
    """End the command with one line on stderr."""
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def simulate(
    out: Path = typer.Option(..., "--out", help="Folder to write into (created if missing)."),
    count: int = typer.Option(
        10, "--count", help="Frames per label (each label with 'mixed'), or pairs with --pair."
    ),
    label: str = typer.Option("mixed", "--label", help="good, medium, bad, or mixed (all three)."),
    width: int = typer.Option(1024, "--width", help="Frame width in pixels (at least 64)."),
    height: int = typer.Option(1024, "--height", help="Frame height in pixels (at least 64)."),
    pixel_scale: float = typer.Option(0.6, "--pixel-scale", help="Pixel scale, arcsec/px."),
    exptime: float = typer.Option(60.0, "--exptime", help="Exposure time in seconds."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same files."),
    site: str = typer.Option("la-silla", "--site", help="Site name written as OBSERVAT."),
    pair: bool = typer.Option(False, "--pair", help="Write reference/new pairs with transients."),
    transients: int = typer.Option(5, "--transients", help="Transients per pair (with --pair)."),
    hosted: float = typer.Option(
        0.5, "--hosted", help="Fraction of the transients that lie on galaxies (with --pair)."
    ),
) -> None:
    """Write simulated telescope frames with known conditions and labels.

    Frames go to OUT/good, OUT/medium and OUT/bad, each FITS file with a `.truth.json` beside it;
    with --pair, OUT/pair-NNN/reference.fits and new.fits, the transients in new.truth.json.
    """
    errors = _option_errors(count, label, site, pair, transients, hosted)
    if errors:
        _fail(errors[0])
    camera = _camera(width, height, pixel_scale, exptime)
    try:
        if pair:
            _write_pairs(out, count, (transients, hosted), camera, seed, site)
        else:
            labels = tuple(QualityLabel) if label == "mixed" else (QualityLabel(label),)
            _write_labelled(out, count, labels, camera, seed, site)
    except (RuntimeError, ValueError) as exc:  # the simulator's own, worded for the user
        _fail(str(exc), code=1)


def _write_labelled(
    out: Path,
    count: int,
    labels: tuple[QualityLabel, ...],
    camera: "SimCamera",
    seed: int,
    site: str,
) -> None:
    """Write a labelled set with a progress bar, then a table of files per label."""
    from training.simulator import write_labelled_set

    written: Counter[str] = Counter()
    with _progress() as progress:
        task = progress.add_task("simulating frames", total=count * len(labels))

        def advance(path: Path, truth: "FrameTruth") -> None:
            written[truth.label.value] += 1
            progress.advance(task)

        write_labelled_set(out, count, camera, seed, advance, labels=labels, site_name=site)
    table = Table(title=f"Frames written to {out}")
    table.add_column("label")
    table.add_column("files", justify="right")
    table.add_column("folder")
    for label in labels:
        table.add_row(label.value, str(written[label.value]), str(out / label.value))
    table.add_row("total", str(sum(written.values())), str(out), style="bold")
    console.print(table)
    console.print(
        f"Field catalogues in {out / 'catalogues'}, the camera's calibration in "
        f"{out / 'photometry.json'} (skyfleet score --photometry)."
    )


def _write_pairs(
    out: Path,
    count: int,
    transients: tuple[int, float],
    camera: "SimCamera",
    seed: int,
    site: str,
) -> None:
    """Write reference/new pairs with a progress bar, then a table of pairs and transients
    (`transients`: how many in each pair, and the fraction of them on galaxies)."""
    import numpy as np

    from training.simulator import DEFAULT_NIGHT, simulate_pair
    from training.simulator.fitsio import write_pair

    table = Table(title=f"Pairs written to {out}")
    for column in ("pair", "transients", "on galaxies", "S/N range", "folder"):
        table.add_column(column, justify="left" if column in ("pair", "folder") else "right")
    per_pair, hosted_fraction = transients
    with _progress() as progress:
        task = progress.add_task("simulating pairs", total=count)
        for index in range(count):
            pair = simulate_pair(
                camera,
                n_transients=per_pair,
                snr_range=(5.0, 50.0),
                rng=np.random.default_rng([seed, index]),
                date_obs=DEFAULT_NIGHT + index * timedelta(seconds=camera.exptime_s + 30.0),
                site_name=site,
                hosted_fraction=hosted_fraction,
            )
            folder = out / f"pair-{index:03d}"
            write_pair(pair, folder)
            snrs = [t.snr for t in pair.transients]
            span = f"{min(snrs):.1f} - {max(snrs):.1f}" if snrs else "-"
            on_galaxies = sum(t.host_offset_arcsec is not None for t in pair.transients)
            table.add_row(folder.name, str(len(snrs)), str(on_galaxies), span, str(folder))
            progress.advance(task)
    console.print(table)

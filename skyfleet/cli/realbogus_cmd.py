"""`skyfleet realbogus score ALERT...`: our real/bogus model on real alert packets.

Anyone can check the model on alerts of their own: ZTF Avro packets (as kowalski stores them)
or Parquet rows (as the Fink broker does); a folder stands for its `.avro` and `.parquet` files.
Each alert's triplet is made as the site makes it (`training.realbogus.alerts`) and scored by
the shipped model (or `--model`); `--json` prints one `AlertScore` line an alert, otherwise a
table and a summary line. A file that cannot be read prints one error line naming it and the
others are still scored; the exit status is 1 if any failed. Heavy modules (torch, pyarrow,
fastavro) are imported only when scoring, so `--help` is fast.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR

if TYPE_CHECKING:
    from training.realbogus.alerts import AlertPacket

app = typer.Typer(
    help="Real/bogus on real alert packets (ZTF Avro, Fink Parquet).", no_args_is_help=True
)


class AlertScore(BaseModel):
    """One scored alert, as `--json` prints it."""

    candid: int
    objectId: str  # ZTF's own field name
    score: float = Field(ge=0.0, le=1.0, description="Our real/bogus probability of real.")
    real: bool = Field(description="score >= threshold: the site would publish it.")
    drb: float | None = Field(description="ZTF's deep real/bogus; null when the packet has none.")
    threshold: float
    model_version: str
    magpsf: float
    file: str


def _scored(
    packets: "list[AlertPacket]", scores: list[float], threshold: float, version: str
) -> list[AlertScore]:
    return [
        AlertScore(
            candid=p.candidate.candid,
            objectId=p.object_id,
            score=round(score, 6),
            real=score >= threshold,
            drb=p.candidate.drb,
            threshold=threshold,
            model_version=version,
            magpsf=p.candidate.magpsf,
            file=str(p.path),
        )
        for p, score in zip(packets, scores, strict=True)
    ]


def _summary(rows: list[AlertScore], files: int, failed: int, threshold: float) -> str:
    passed = sum(row.real for row in rows)
    labelled = [row for row in rows if row.drb is not None]
    agree = sum(row.real == (row.drb > 0.5) for row in labelled if row.drb is not None)
    line = f"{len(rows)} alert(s) from {files - failed} file(s): {passed} at or above {threshold:g}"
    if labelled:
        line += f"; agrees with ZTF's drb > 0.5 on {agree} of {len(labelled)}"
    return line + (f"; {failed} file(s) failed" if failed else "")


def _table(rows: list[AlertScore], version: str) -> Table:
    table = Table(title=f"real/bogus v{version} on {len(rows)} alert(s)")
    for column in ("objectId", "candid", "mag", "score", "drb", "verdict"):
        table.add_column(column, justify="left" if column == "objectId" else "right")
    for row in rows:
        table.add_row(
            row.objectId,
            str(row.candid),
            f"{row.magpsf:.2f}",
            f"{row.score:.3f}",
            "-" if row.drb is None else f"{row.drb:.3f}",
            "[green]real[/]" if row.real else "[red]bogus[/]",
        )
    return table


@app.command("score")
def score(
    alerts: Annotated[
        list[Path], typer.Argument(help="Alert files (.avro, .parquet) or folders of them.")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line an alert.")] = False,
    model_dir: Annotated[
        Path, typer.Option("--model", help="Real/bogus model folder (version or repository).")
    ] = SHIPPED_REALBOGUS_MODEL_DIR,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Score to count as real (default: the site's)."),
    ] = None,
) -> None:
    """Score real alert packets with our real/bogus model, beside ZTF's own drb."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    import numpy as np

    from imaging.transients.config import TransientSearchSettings
    from imaging.transients.realbogus import RealBogusLoadError, RealBogusModel
    from training.realbogus.alerts import AlertFileError, alert_files, read_alert_file

    try:
        model = RealBogusModel.load(model_dir)
    except RealBogusLoadError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    limit = TransientSearchSettings().real_bogus_threshold if threshold is None else threshold
    version = model.manifest.version
    rows: list[AlertScore] = []
    files = failed = 0
    for given in alerts:
        found = alert_files([given])
        if given.is_dir() and not found:
            errors.print(f"[red]error:[/] {escape(str(given))}: no .avro or .parquet files in it")
            files, failed = files + 1, failed + 1
        for path in found:
            files += 1
            try:
                packets = read_alert_file(path)
            except AlertFileError as exc:
                errors.print(f"[red]error:[/] {escape(str(exc))}")
                failed += 1
                continue
            scored = model.score(np.stack([p.triplet for p in packets]))
            batch = _scored(packets, [float(s) for s in scored], limit, version)
            rows += batch
            if json_out:
                for row in batch:
                    typer.echo(row.model_dump_json())
    if not json_out:
        console = Console()
        console.print(_table(rows, version))
        console.print(_summary(rows, files, failed, limit))
    if failed:
        raise typer.Exit(code=1)

"""`skyfleet train ...`: training runs on Ray Train (`quality`, `realbogus`) and fleet retraining
through the promotion gate (`fleet`, once or on a schedule)."""

import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from training.config import QualityTrainingSettings
from training.fleet_config import FleetTrainingSettings, parse_interval

if TYPE_CHECKING:
    from training.fleet_record import FleetRunRecord
    from training.train_quality import TrainingReport

app = typer.Typer(help="Train fleet models on Ray Train.", no_args_is_help=True)

STAGE_NAMES = {
    "simulate": "Simulating frames",
    "dataset": "Preprocessing frames",
    "train": "Training",
    "evaluate": "Evaluating on test split",
    "export": "Exporting model",
    "holdout": "Held-out set",
    "samples": "Fleet samples",
    "gate": "Gate",
}
STAGE_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    TextColumn("[dim]{task.fields[detail]}"),
)


class _StageProgress:
    """Shows each stage of a run as a rich progress bar with its latest detail."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int, detail: str = "") -> None:
        if stage not in self.tasks:
            description = STAGE_NAMES.get(stage, stage)
            self.tasks[stage] = self.progress.add_task(description, total=total, detail="")
        self.progress.update(self.tasks[stage], completed=done, total=total, detail=detail)


def _summary(report: "TrainingReport") -> Table:
    card = report.card
    table = Table(title=f"{card.model_name} v{card.model_version}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("best epoch", f"{card.best_epoch + 1} of {card.epochs_run}")
    if report.started_at_epoch:
        table.add_row("resumed", f"from the checkpoint of epoch {report.started_at_epoch}")
    table.add_row("validation accuracy", f"{card.validation_accuracy:.2%}")
    table.add_row("test accuracy", f"{card.test.accuracy:.2%} ({card.test.frames} frames)")
    for metrics in card.test.classes:
        table.add_row(f"recall {metrics.name}", f"{metrics.recall:.2%}")
    table.add_row("calibration error (ECE)", f"{card.test.expected_calibration_error:.4f}")
    table.add_row("fit time", f"{report.fit_time_s:.0f} s")
    table.add_row("model", str(report.export.torchscript_path))
    table.add_row("sha256", report.export.torchscript_sha256)
    table.add_row("ONNX", str(report.export.onnx_path))
    table.add_row("Triton config", str(report.export.config_path))
    table.add_row("model card", str(report.model_card_path))
    table.add_row("plots", f"{report.history_plot_path}\n{report.confusion_plot_path}")
    table.add_row("report", str(report.report_path))
    return table


@app.command("quality")
def quality(
    data: Annotated[Path, typer.Option(help="Labelled frames in good/, medium/, bad/.")],
    out: Annotated[Path, typer.Option(help="Run directory for cache, checkpoints and model.")],
    workers: Annotated[int | None, typer.Option(help="Ray Train workers (default 1).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (default 40).")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu", help="One GPU per worker.")] = None,
    loader_workers: Annotated[
        int | None,
        typer.Option(help="Processes augmenting batches beside each worker (default 0)."),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Start no new epoch after this much fitting."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Frames per batch (default 32).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (default 1e-3).")] = None,
    width: Annotated[
        int | None,
        typer.Option(help="Channels of the first convolution block, doubled by each of four."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Split, simulation and init seed.")] = None,
    simulate: Annotated[
        int | None,
        typer.Option(metavar="PER_CLASS", help="First simulate this many frames per class."),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(metavar="SIDES", help="Simulated frame sides, e.g. 512,1024,2048."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Processes writing simulated frames.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="ray (default) or local: the same loop without Ray.")
    ] = None,
    repository: Annotated[
        Path | None,
        typer.Option(help="Model repository to export into (default OUT/model_repository)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with a \\[train] table.")] = None,
) -> None:
    """Train the frame-quality classifier, evaluate it on the test split and export it.
    Long because each of its eighteen options is one typed parameter; the work is elsewhere.
    """
    settings = QualityTrainingSettings.load(
        config,
        data_dir=data,
        run_dir=out,
        workers=workers,
        epochs=epochs,
        use_gpu=gpu,
        loader_workers=loader_workers,
        time_limit_s=time_limit,
        batch_size=batch_size,
        learning_rate=lr,
        width=width,
        seed=seed,
        simulate_per_class=simulate,
        simulate_sizes=sizes.split(",") if sizes else None,
        simulate_jobs=jobs,
        backend=backend,
        model_repository=repository,
    )
    console = Console()
    where = "this process (no Ray)" if settings.backend == "local" else "Ray"
    console.print(
        f"Training [bold]{settings.model_name}[/] in {where}: {settings.workers} worker(s) "
        f"({'GPU' if settings.use_gpu else f'{settings.threads_per_worker} CPU'} each), "
        f"data {settings.data_dir}, run {settings.run_dir}"
    )
    from imaging.model_signature import ModelSignatureError
    from training.export import ExportError  # torch loads only to train
    from training.train_quality import run_quality_training

    try:
        with Progress(*STAGE_COLUMNS, console=console) as progress:
            report = run_quality_training(settings, _StageProgress(progress))
    except (FileNotFoundError, ExportError, ModelSignatureError) as exc:
        Console(stderr=True).print(f"[red]Training failed:[/] {exc}")
        raise typer.Exit(code=1) from None
    console.print(_summary(report))


@app.command("realbogus")
def realbogus(
    out: Annotated[Path, typer.Argument(help="Run directory for the triplets and checkpoints.")],
    pairs: Annotated[
        int, typer.Option(min=1, help="Simulated pairs when OUT/data/triplets.npz is missing.")
    ] = 120,
    repository: Annotated[
        Path | None,
        typer.Option(help="Model repository to write the next version into (default: shipped)."),
    ] = None,
) -> None:
    """Train the real/bogus classifier on Ray Train, export its next version and evaluate it.

    Other knobs (epochs, learning rate, a model to fine-tune) are SKYFLEET_RB_* variables.
    """
    from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
    from training.realbogus.run import train_realbogus  # torch and Ray load only to train

    console = Console()
    with console.status(f"Training real/bogus in {out} ({pairs} simulated pairs at most)"):
        report = train_realbogus(out, pairs, repository or SHIPPED_REALBOGUS_MODEL_DIR)
    released = f"v{report.version}" if report.version is not None else "candidate (not released)"
    table = Table(title=f"realbogus {released}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in report.summary_rows():
        table.add_row(name, value)
    console.print(table)


def _record_table(record: "FleetRunRecord", record_path: Path) -> Table:
    outcome = "promoted" if record.outcome == "promoted" else "rejected"
    table = Table(title=f"{record.model}: candidate {outcome}", show_header=True)
    table.add_column("metric (held-out)", style="bold")
    table.add_column("candidate", justify="right")
    table.add_column("serving", justify="right")
    for row in record.metrics:
        table.add_row(
            row.name,
            "n/a" if row.candidate is None else f"{row.candidate:.4f}",
            "n/a" if row.serving is None else f"{row.serving:.4f}",
        )
    table.caption = (
        f"{record.reason}\nheld-out set {record.holdout.version} "
        f"(sha256 {record.holdout.sha256[:12]}); "
        + (
            f"released {record.released_dir}{' (signed)' if record.signed else ''}"
            if record.released_dir
            else f"kept in {record.rejected_dir}"
        )
        + f"\nrecord {record_path}"
    )
    return table


def _fleet_errors() -> tuple[type[Exception], ...]:
    """What a fleet run reports as one line (imported only when a run starts)."""
    from imaging.model_signature import ModelSignatureError
    from imaging.quality_model import ModelLoadError
    from imaging.transients.realbogus import RealBogusLoadError
    from training.export import ExportError
    from training.fleet_run import FleetRunError
    from training.holdout import HoldoutError
    from training.versions import VersionTakenError

    return (
        FleetRunError,
        HoldoutError,
        ExportError,
        VersionTakenError,
        ModelLoadError,
        RealBogusLoadError,
        ModelSignatureError,
        FileNotFoundError,
        ValueError,
    )


def _run_fleet_once(settings: FleetTrainingSettings, console: Console) -> "FleetRunRecord":
    """One run with a progress bar per stage."""
    from training.fleet_run import run_fleet_training  # torch and Ray load only to train

    command = None
    if Path(sys.argv[0]).name == "skyfleet":
        command = shlex.join(["skyfleet", *sys.argv[1:]])
    with Progress(*STAGE_COLUMNS, console=console) as progress:
        return run_fleet_training(settings, _StageProgress(progress), command=command)


def _wait_until(when: datetime, console: Console) -> None:
    """A progress line counting down to the next run."""
    total = max(0.0, (when - datetime.now(UTC)).total_seconds())
    columns = (
        TextColumn(f"next run at {when:%Y-%m-%d %H:%M:%S}Z"),
        BarColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("wait", total=total or 1.0)
        while (left := (when - datetime.now(UTC)).total_seconds()) > 0:
            progress.update(task, completed=total - left)
            time.sleep(min(1.0, left))


def _fresh_run_dir(root: Path, started: datetime) -> Path:
    """`root/<UTC start>`, with a suffix if a run of the same second has it."""
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    candidate, suffix = root / stamp, 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    return candidate


def _run_on_schedule(settings: FleetTrainingSettings, every: timedelta, console: Console) -> None:
    """A run every `every` (each in OUT/<UTC start>/), a line per run, until Ctrl-C."""
    from training.fleet_record import summary_line

    errors = _fleet_errors()
    console.print(
        f"Retraining {settings.fleet_model} every {every} into {settings.run_dir}/<UTC time>/; "
        "Ctrl-C stops"
    )
    runs = 0
    try:
        while True:
            started = datetime.now(UTC)
            run_dir = _fresh_run_dir(settings.run_dir, started)
            try:
                record = _run_fleet_once(settings.model_copy(update={"run_dir": run_dir}), console)
                console.print(summary_line(record, run_dir / "record.json"), markup=False)
            except errors as exc:
                console.print(f"{started:%Y-%m-%d %H:%M}Z [red]run failed:[/] {exc}")
            runs += 1
            _wait_until(started + every, console)
    except KeyboardInterrupt:
        console.print(f"Stopped after {runs} run(s).")


@app.command("fleet")
def fleet(
    out: Annotated[Path, typer.Option(help="Run folder (with --every: one sub-folder per run).")],
    model: Annotated[
        Literal["quality", "realbogus"], typer.Option(help="The model to retrain.")
    ] = "quality",
    repository: Annotated[
        Path | None,
        typer.Option(help="Model repository: serving model in, promoted version out."),
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="A folder of the sites' samples (JSON + .npy).")
    ] = None,
    every: Annotated[
        str | None, typer.Option(metavar="INTERVAL", help="Run again every 24h, 30m ...")
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="How far below the serving model the candidate may be (0.01)."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="Gate metric (accuracy / roc_auc by model).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train CPU workers (default 1).")] = None,
    gpus: Annotated[int | None, typer.Option(help="Ray Train workers, one GPU each.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="The quality model's simulated base set.")
    ] = None,
    holdout: Annotated[Path | None, typer.Option(help="The held-out set's folder.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (quality).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with a \\[train] table.")] = None,
) -> None:
    """Retrain a model on the fleet's data; release it only if the gate lets it through."""
    try:
        interval = parse_interval(every) if every is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from None
    error = Console(stderr=True)
    from pydantic import ValidationError

    from fleetbus.settings import SettingsFileError

    try:
        settings = FleetTrainingSettings.load(
            config,
            run_dir=out,
            fleet_model=model,
            model_repository=repository,
            samples_dir=samples,
            margin=margin,
            gate_metric=metric,
            workers=gpus or workers,
            use_gpu=True if gpus else None,
            data_dir=data,
            holdout_dir=holdout,
            epochs=epochs,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        error.print(f"[red]Bad settings:[/] {problems}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None
    except SettingsFileError as exc:
        error.print(f"[red]Bad settings:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    console = Console()
    if interval is not None:
        _run_on_schedule(settings, interval, console)
        return
    try:
        record = _run_fleet_once(settings, console)
    except _fleet_errors() as exc:
        error.print(f"[red]Fleet training failed:[/] {exc}")
        raise typer.Exit(code=1) from None
    console.print(_record_table(record, settings.record_path))

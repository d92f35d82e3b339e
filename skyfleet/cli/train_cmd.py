"""`skyfleet train ...`: training runs on Ray Train."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from training.config import QualityTrainingSettings

if TYPE_CHECKING:
    from training.train_quality import TrainingReport

app = typer.Typer(help="Train fleet models on Ray Train.", no_args_is_help=True)

STAGE_NAMES = {
    "simulate": "Simulating frames",
    "dataset": "Preprocessing frames",
    "train": "Training",
    "evaluate": "Evaluating on test split",
    "export": "Exporting model",
}


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
    """Train the frame-quality classifier, evaluate it on the test split and export it."""
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
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
    from training.export import ExportError  # torch loads only to train
    from training.train_quality import run_quality_training

    try:
        with Progress(*columns, console=console) as progress:
            report = run_quality_training(settings, _StageProgress(progress))
    except (FileNotFoundError, ExportError) as exc:
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
    table = Table(title=f"realbogus v{report.version}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("epochs", str(len(report.history)))
    table.add_row("held-out ROC AUC", _auc(report.held_out.roc_auc))
    table.add_row("held-out reals", f"{report.held_out_reals} of {report.held_out.samples}")
    table.add_row("real ZTF alerts ROC AUC", _auc(report.ztf.roc_auc))
    table.add_row("model", str(report.model_dir))
    console.print(table)


def _auc(value: float | None) -> str:
    return "n/a (one class only)" if value is None else f"{value:.3f}"

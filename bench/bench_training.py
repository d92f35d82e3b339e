"""Ray Train's overhead on the quality model: the same epoch loop on the same cached data, once in
plain torch (`train_locally`) and once on one Ray Train worker (`fit_on_ray`), in one process run.

The steady-state epoch time is the median wall time between the ends of consecutive epochs,
so it counts everything a Ray epoch costs (DataLoader wrapping, metric reports, a checkpoint per
epoch, Ray's own processes sharing the cores) but not Ray's one-off start and the slower first
epochs while its actors settle, which the fit wall time shows. Requirement: Ray's steady-state
epoch at most 10 % slower than plain torch. Epochs must be long enough to be realistic: with
~200 frames an epoch lasts ~1 s and Ray's fixed costs dominate.
"""

import statistics
import tempfile
from itertools import pairwise
from pathlib import Path

from rich.console import Console
from rich.table import Table

from training.config import QualityTrainingSettings
from training.dataset import build_dataset
from training.evaluate import EpochMetrics
from training.quality_fit import FitOutcome, train_locally
from training.ray_fit import fit_on_ray
from training.simulator.camera import SimCamera
from training.simulator.dataset import write_labelled_set

FRAMES_PER_CLASS = 300
EPOCHS = 6
OVERHEAD_LIMIT = 0.10


def steady_epoch_s(history: list[EpochMetrics]) -> float:
    """Median wall time from the end of one epoch to the end of the next."""
    ends = [m.finished_at_unix_s for m in history]
    return statistics.median(later - earlier for earlier, later in pairwise(ends))


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        data_dir = Path(scratch) / "frames"
        console.print(f"simulating {FRAMES_PER_CLASS} frames per class ...")
        write_labelled_set(data_dir, FRAMES_PER_CLASS, SimCamera(), seed=1)
        settings = QualityTrainingSettings(
            data_dir=data_dir,
            run_dir=Path(scratch) / "run",
            epochs=EPOCHS,
            early_stopping_patience_epochs=EPOCHS,
        )
        summary = build_dataset(settings.data_dir, settings.dataset_dir, settings.seed)
        console.print(f"training {EPOCHS} epochs on {summary.split_counts['train']} ...")
        runs: dict[str, FitOutcome] = {
            "plain torch": train_locally(settings),
            "Ray Train, 1 worker": fit_on_ray(settings),
        }
    plain = steady_epoch_s(runs["plain torch"].history)
    threads, batch = settings.threads_per_worker, settings.batch_size
    table = Table(title=f"Quality training, {threads} threads, batch {batch}")
    for column in ("path", "fit wall s", "epoch s (steady)", "vs plain torch"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, outcome in runs.items():
        epoch = steady_epoch_s(outcome.history)
        table.add_row(
            name, f"{outcome.wall_time_s:.1f}", f"{epoch:.2f}", f"{epoch / plain - 1.0:+.1%}"
        )
    console.print(table)
    overhead = steady_epoch_s(runs["Ray Train, 1 worker"].history) / plain - 1.0
    verdict = "[green]within[/]" if overhead <= OVERHEAD_LIMIT else "[red]over[/]"
    console.print(
        f"Ray Train steady-state overhead {overhead:+.1%}: {verdict} the "
        f"{OVERHEAD_LIMIT:.0%} budget; starting and stopping Ray adds "
        f"{runs['Ray Train, 1 worker'].wall_time_s - runs['plain torch'].wall_time_s:.1f} s a fit."
    )

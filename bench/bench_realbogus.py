"""Real/bogus on real held-out ZTF alerts: ROC AUC against ZTF's drb with its bootstrap interval
and recall by magnitude bin, and the DECam supernova's score.

`python -m bench realbogus` scores the shipped model on the real alerts no model was trained on
(`training.realbogus.real_split`: the Fink objects of the validation split and the 36 kowalski
alerts) and prints, per set and for all together: ROC AUC against `drb > 0.5` with its 95 %
object-bootstrap interval, ZTF's first-generation `rb` on the same alerts as the yardstick,
recall on `drb > 0.9` at the site's threshold overall, per magnitude bin and for bright, on-source
and fading transients. Goals (issue 21): AUC >= 0.93, recall >= 0.9. Then the score our search
gives the DECam supernova (science stack against reference stack, as `bench transients` runs
it). About a minute on 2 cores.
"""

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.bench_transients import DECAM, DECAM_TRANSIENT_XY
from imaging.fits_reader import read_frame
from imaging.transients.config import TransientSearchSettings
from imaging.transients.realbogus import RealBogusModel
from imaging.transients.references import build_reference
from imaging.transients.search import search_transients
from training.realbogus.real_metrics import RealEvaluation, evaluate_on_real_alerts
from training.realbogus.real_split import real_validation_alerts

GOAL_AUC = 0.93
GOAL_RECALL = 0.9
DECAM_MATCH_PX = 2.0


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def figures_table(results: dict[str, RealEvaluation], version: str) -> Table:
    """One column a set of alerts, one row a figure."""
    table = Table(title=f"real/bogus v{version} on held-out real ZTF alerts (label drb > 0.5)")
    table.add_column("figure")
    for name in results:
        table.add_column(name, justify="right")
    rows: dict[str, list[str]] = {
        "alerts / objects / drb <= 0.5": [
            f"{r.alerts} / {r.objects} / {r.negatives}" for r in results.values()
        ],
        f"ROC AUC [95 %] (goal >= {GOAL_AUC})": [
            f"{_value(r.roc_auc)} [{_value(r.roc_auc_low)}, {_value(r.roc_auc_high)}]"
            for r in results.values()
        ],
        "ZTF rb ROC AUC (yardstick)": [_value(r.ztf_rb_auc) for r in results.values()],
        f"recall drb > 0.9 (goal >= {GOAL_RECALL})": [
            _value(r.recall_sure) for r in results.values()
        ],
    }
    first = next(iter(results.values()))
    for index, bin_recall in enumerate(first.by_magnitude + first.by_kind):
        rows[f"recall, {bin_recall.name}"] = [
            f"{_value((r.by_magnitude + r.by_kind)[index].recall)} "
            f"(n={(r.by_magnitude + r.by_kind)[index].alerts})"
            for r in results.values()
        ]
    for name, cells in rows.items():
        table.add_row(name, *cells)
    threshold = first.threshold
    table.caption = f"threshold in force {threshold:g}; intervals resample objects"
    return table


def decam_supernova_score(model: RealBogusModel, decam: Path = DECAM) -> float | None:
    """Our real/bogus score of the DECam supernova (None: not detected at all)."""
    new = read_frame(decam / "Stack-DEC-OBS04.fits")
    reference = build_reference([read_frame(decam / "Stack-DEC-OBS18.fits")])
    everything = TransientSearchSettings(real_bogus_threshold=0.0)
    outcome = search_transients(new, reference, site_id="bench", model=model, settings=everything)
    near = [
        c.real_bogus
        for c in outcome.candidates
        if np.hypot(c.x_px - DECAM_TRANSIENT_XY[0], c.y_px - DECAM_TRANSIENT_XY[1]) < DECAM_MATCH_PX
    ]
    return max(near) if near else None


def main() -> None:
    console = Console()
    model = RealBogusModel.load()
    threshold = TransientSearchSettings().real_bogus_threshold
    results = evaluate_on_real_alerts(model, real_validation_alerts(), threshold)
    console.print(figures_table(results, model.manifest.version))
    console.print(f"DECam supernova score: {_value(decam_supernova_score(model))}")

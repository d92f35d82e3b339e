"""Transient detection: completeness and false candidates on held-out simulations, the real DECam
pair, ZTF real/bogus agreement, and the time to search a 4096^2 frame.

`python -m bench transients` (SKYFLEET_BENCH_PAIRS sets the number of simulated 1024^2 pairs).
Simulations use seeds the real/bogus model never trained on.
"""

import os
import statistics
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from rich.console import Console
from rich.table import Table

from site_agent.fits_reader import read_frame
from site_agent.transients.config import TransientSearchSettings
from site_agent.transients.realbogus import RealBogusModel
from site_agent.transients.references import build_reference
from site_agent.transients.search import search_transients
from training.realbogus.dataset import label_detections, simulate_search_pair
from training.realbogus.evaluate import evaluate_on_ztf

DECAM = Path(__file__).resolve().parents[1].parent / "shared/data/real/decam-sfft"
DECAM_TRANSIENT_XY = (128.7, 127.4)
BENCH_SEED = 424242
SNR_BINS = ((3, 4), (4, 5), (5, 6), (6, 8), (8, 10), (10, 20), (20, 100))
RB_THRESHOLDS = (0.3, 0.4, 0.5, 0.7)
MATCH_RADIUS_PX = 2.5


def simulated_completeness(
    model: RealBogusModel, pairs: int, thresholds: tuple[float, ...] = RB_THRESHOLDS
) -> tuple[Table, dict[str, float]]:
    """Completeness per true S/N bin and false candidates per frame, per real/bogus threshold."""
    rng = np.random.default_rng(BENCH_SEED)
    settings = TransientSearchSettings(real_bogus_threshold=0.0, max_published=10_000)
    snr, best_score, false_scores = [], [], []
    for _ in range(pairs):
        pair = simulate_search_pair(rng, size_px=1024, n_transients=30, snr_range=(3.0, 40.0))
        outcome = search_transients(
            pair.new, pair.reference, site_id="bench", model=model, settings=settings
        )
        x = np.array([c.x_px for c in outcome.candidates])
        y = np.array([c.y_px for c in outcome.candidates])
        scores = np.array([c.real_bogus for c in outcome.candidates])
        labels, _ = label_detections(x, y, pair.transients, MATCH_RADIUS_PX)
        false_scores.append(scores[labels == 0])
        for transient in pair.transients:
            near = np.hypot(x - transient.x_px, y - transient.y_px) <= MATCH_RADIUS_PX
            snr.append(transient.snr)
            best_score.append(scores[near].max() if near.any() else -1.0)
    snr_array, score_array = np.array(snr), np.array(best_score)
    table = Table(title=f"Completeness on {pairs} held-out 1024^2 pairs, by real/bogus threshold")
    table.add_column("true S/N", justify="right")
    table.add_column("injected", justify="right")
    table.add_column("detected", justify="right")
    for threshold in thresholds:
        table.add_column(f"rb>={threshold}", justify="right")
    for low, high in SNR_BINS:
        in_bin = (snr_array >= low) & (snr_array < high)
        rates = [f"{(score_array[in_bin] >= t).mean():.0%}" for t in thresholds]
        detected = f"{(score_array[in_bin] >= 0).mean():.0%}"
        table.add_row(f"{low}-{high}", str(in_bin.sum()), detected, *rates)
    false_row = [f"{np.mean([(f >= t).sum() for f in false_scores]):.2f}" for t in thresholds]
    table.add_row("false / frame", "", "", *false_row)
    default = TransientSearchSettings().real_bogus_threshold
    summary = {
        "completeness_snr_ge_10": float((score_array[snr_array >= 10] >= default).mean()),
        "completeness_snr_4.5_5.5": float(
            (score_array[(snr_array >= 4.5) & (snr_array < 5.5)] >= default).mean()
        ),
        "false_candidates_per_frame": float(np.mean([(f >= default).sum() for f in false_scores])),
    }
    return table, summary


def decam_result(model: RealBogusModel) -> dict[str, float]:
    """The published DECam transient: found or not, other candidates, correlation with SFFT."""
    new = read_frame(DECAM / "Stack-DEC-OBS04.fits")
    reference = build_reference([read_frame(DECAM / "Stack-DEC-OBS18.fits")])
    outcome = search_transients(new, reference, site_id="bench", model=model)
    distances = [
        np.hypot(c.x_px - DECAM_TRANSIENT_XY[0], c.y_px - DECAM_TRANSIENT_XY[1])
        for c in outcome.candidates
    ]
    published = fits.getdata(DECAM / "FinalDifference.fits")
    difference = outcome.detections.difference if outcome.detections else None
    correlation = (
        float(np.corrcoef(difference.data[~difference.bad], published[~difference.bad])[0, 1])
        if difference is not None
        else float("nan")
    )
    found = bool(distances) and min(distances) < 2.0
    return {
        "decam_transient_found": float(found),
        "decam_other_candidates": float(len(outcome.candidates) - int(found)),
        "decam_difference_correlation": correlation,
    }


def search_time_4096(model: RealBogusModel, repeats: int = 5) -> dict[str, float]:
    """Median wall time of `search_transients` on a 4096^2 frame with its reference in memory."""
    pair = simulate_search_pair(
        np.random.default_rng(BENCH_SEED + 1), size_px=4096, n_transients=50, reference_epochs=1
    )
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        search_transients(pair.new, pair.reference, site_id="bench", model=model)
        times.append(time.perf_counter() - started)
    return {"search_4096_median_s": statistics.median(times), "search_4096_min_s": min(times)}


def main() -> None:
    console = Console()
    model = RealBogusModel.load()
    pairs = int(os.environ.get("SKYFLEET_BENCH_PAIRS", "12"))
    table, numbers = simulated_completeness(model, pairs)
    console.print(table)
    numbers |= decam_result(model)
    ztf = evaluate_on_ztf(model)
    numbers |= {
        "ztf_alerts": float(ztf.samples),
        "ztf_drb_real": float(ztf.positives),
        "ztf_roc_auc_vs_drb": float("nan") if ztf.roc_auc is None else ztf.roc_auc,
        "ztf_agreement": ztf.agreement,
    }
    numbers |= search_time_4096(model)
    summary = Table(title=f"Transient detection ({os.cpu_count()} cores)")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for name, value in numbers.items():
        summary.add_row(name, f"{value:.3f}")
    console.print(summary)

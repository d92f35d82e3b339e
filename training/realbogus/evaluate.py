"""Evaluating the real/bogus model: ROC AUC on held-out simulations and on real ZTF alerts.

ZTF alert packets carry 63x63 science, template and difference stamps and ZTF's own deep
real/bogus score `drb`. Their central 31x31 pixels are scored by our model; a negative
difference (`isdiffpos` = 'f', a fading source) is flipped and new/reference swapped, as our
site would detect it. Agreement and ROC AUC are against `drb > 0.5` as the label; a packet
without `drb` is skipped and counted (`read_ztf_alerts`).
"""

import gzip
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from pydantic import BaseModel
from scipy.stats import rankdata

from imaging.transients.cutouts import CUTOUT_SIDE_PX
from imaging.transients.realbogus import RealBogusModel

ZTF_ALERTS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared/data/real/ztf-alerts-kowalski"
DRB_REAL = 0.5


class RocSummary(BaseModel):
    """How well scores separate two classes."""

    samples: int
    positives: int
    roc_auc: float | None
    agreement: float


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney), None when a class is missing."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def summarise(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> RocSummary:
    """AUC and the fraction of samples whose thresholded score matches the label."""
    labels = np.asarray(labels).astype(bool)
    return RocSummary(
        samples=len(labels),
        positives=int(labels.sum()),
        roc_auc=roc_auc(scores, labels),
        agreement=float(np.mean((np.asarray(scores) >= threshold) == labels)),
    )


def _stamp(record: dict[str, Any], key: str) -> np.ndarray:
    raw = gzip.decompress(record[key]["stampData"])
    with warnings.catch_warnings():  # ZTF's stamps have a SIMPLE card astropy finds irregular
        warnings.simplefilter("ignore", VerifyWarning)
        with fits.open(io.BytesIO(raw)) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
    top = (data.shape[0] - CUTOUT_SIDE_PX) // 2
    left = (data.shape[1] - CUTOUT_SIDE_PX) // 2
    return data[top : top + CUTOUT_SIDE_PX, left : left + CUTOUT_SIDE_PX]


def alert_triplet(record: dict[str, Any]) -> np.ndarray:
    """The new, reference and difference stamps `[3, 31, 31]` of one ZTF alert record (Avro or
    Fink's Parquet row), a fading source turned into a rising one as our site would see it."""
    science, template = _stamp(record, "cutoutScience"), _stamp(record, "cutoutTemplate")
    difference = _stamp(record, "cutoutDifference")
    if record["candidate"]["isdiffpos"] in ("f", "0"):
        science, template, difference = template, science, -difference
    return np.stack([science, template, difference])


def read_ztf_alert_records(alerts_dir: Path = ZTF_ALERTS_DIR) -> list[dict[str, Any]]:
    """Every Avro alert packet under `alerts_dir`, in file-name order."""
    records = []
    for path in sorted(Path(alerts_dir).rglob("*.avro")):
        with path.open("rb") as stream:
            records.append(cast(dict[str, Any], next(fastavro.reader(stream))))
    return records


@dataclass(frozen=True)
class LabelledAlerts:
    """Triplets `[N, 3, 31, 31]` (new, reference, difference), ZTF's `drb` of each, and how many
    packets were skipped for carrying no `drb` (older packets, or a broker that dropped it)."""

    stamps: np.ndarray
    drb: np.ndarray
    skipped_without_drb: int


def read_ztf_alerts(alerts_dir: Path = ZTF_ALERTS_DIR) -> LabelledAlerts:
    """Every alert under `alerts_dir` that carries ZTF's `drb`; the others skipped and counted."""
    records = read_ztf_alert_records(alerts_dir)
    labelled = [r for r in records if r["candidate"].get("drb") is not None]
    stamps = [alert_triplet(record) for record in labelled]
    return LabelledAlerts(
        np.array(stamps).reshape(-1, 3, CUTOUT_SIDE_PX, CUTOUT_SIDE_PX),
        np.array([float(record["candidate"]["drb"]) for record in labelled]),
        len(records) - len(labelled),
    )


def evaluate_on_ztf(model: RealBogusModel, alerts_dir: Path = ZTF_ALERTS_DIR) -> RocSummary:
    """Our real/bogus against ZTF's `drb > 0.5` on the stored alerts."""
    alerts = read_ztf_alerts(alerts_dir)
    return summarise(model.score(alerts.stamps), alerts.drb > DRB_REAL)

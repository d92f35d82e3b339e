"""The real ZTF alerts of the shared data, labelled by ZTF's `drb`, and their fixed split by object.

Labels: ZTF's own deep real/bogus score `drb` (Duev et al. 2019), real when `drb > 0.5`; we have
no human vetting of these alerts, so "better" means "agrees with `drb` more". Packets without
`drb` are skipped and counted.

The split is by ZTF `objectId`, never by alert, so the several alerts of one object (up to
three in the Fink files) are all on one side: an object is in the validation split when the
first 8 hex digits of `sha256(SPLIT_SEED + objectId)`, read as a fraction of 2^32, are below
`VALIDATION_SHARE`. That depends on the object's name alone (not on file order or on which
other alerts exist), so adding alerts never moves an object across. The validation set is
those Fink objects plus every kowalski alert (35 other objects, none in the Fink files);
training uses the remaining Fink objects and never an object of the validation set.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging.transients.cutouts import CUTOUT_SIDE_PX
from training.realbogus.alerts import AlertPacket, alert_files, read_alert_file
from training.realbogus.evaluate import DRB_REAL, ZTF_ALERTS_DIR

FINK_ALERTS_DIR = ZTF_ALERTS_DIR.parent / "ztf-alerts-fink"
SPLIT_SEED = "skyfleet-realbogus-split-1"
"""Salt of the object hash; changing it draws another split (and invalidates the figures)."""
VALIDATION_SHARE = 0.35
"""Share of the Fink objects held out: ~80 of 237 objects, ~8 of the 23 with drb <= 0.5 (fewer
negatives would leave the AUC resting on a handful of ranks; more would starve training)."""


@dataclass(frozen=True)
class RealAlerts:
    """Labelled real alerts: triplets `[N, 3, 31, 31]` and, per alert, ZTF's scores, magnitude,
    object, candid, whether it fades, and its distance to the nearest reference source (px)."""

    stamps: np.ndarray
    drb: np.ndarray
    rb: np.ndarray
    magpsf: np.ndarray
    objects: np.ndarray
    candid: np.ndarray
    fading: np.ndarray
    distnr_px: np.ndarray
    skipped_without_drb: int = 0

    @property
    def labels(self) -> np.ndarray:
        """1 where ZTF's `drb` says real (> 0.5), else 0."""
        return (self.drb > DRB_REAL).astype(np.int64)

    def select(self, keep: np.ndarray) -> "RealAlerts":
        """The alerts where `keep` is true."""
        return RealAlerts(
            self.stamps[keep],
            self.drb[keep],
            self.rb[keep],
            self.magpsf[keep],
            self.objects[keep],
            self.candid[keep],
            self.fading[keep],
            self.distnr_px[keep],
            self.skipped_without_drb,
        )

    @classmethod
    def joined(cls, parts: list["RealAlerts"]) -> "RealAlerts":
        """The alerts of all `parts`, in order."""

        def column(name: str) -> np.ndarray:
            return np.concatenate([getattr(part, name) for part in parts])

        return cls(
            column("stamps"),
            column("drb"),
            column("rb"),
            column("magpsf"),
            column("objects"),
            column("candid"),
            column("fading"),
            column("distnr_px"),
            sum(part.skipped_without_drb for part in parts),
        )


def _labelled(packets: list[AlertPacket], skipped: int) -> RealAlerts:
    def column(values: Iterable[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    return RealAlerts(
        np.array([p.triplet for p in packets], dtype=np.float32).reshape(
            -1, 3, CUTOUT_SIDE_PX, CUTOUT_SIDE_PX
        ),
        column(p.candidate.drb for p in packets),
        column(p.candidate.rb for p in packets),
        column(p.candidate.magpsf for p in packets),
        np.array([p.object_id for p in packets], dtype=str),
        np.array([p.candidate.candid for p in packets], dtype=np.int64),
        np.array([p.candidate.isdiffpos in ("f", "0") for p in packets], dtype=bool),
        column(p.candidate.distnr for p in packets),
        skipped,
    )


def load_real_alerts(folder: Path) -> RealAlerts:
    """Every distinct alert (by candid) with a `drb` in the Avro/Parquet files under `folder`,
    in file order; none when the folder is missing."""
    packets: list[AlertPacket] = []
    seen: set[int] = set()
    skipped = 0
    for path in alert_files([folder]) if folder.is_dir() else []:
        for packet in read_alert_file(path):
            if packet.candidate.candid in seen:
                continue
            seen.add(packet.candidate.candid)
            if packet.candidate.drb is None:
                skipped += 1
            else:
                packets.append(packet)
    return _labelled(packets, skipped)


def in_validation(object_id: str) -> bool:
    """Whether a ZTF object belongs to the validation split (see the module's docstring)."""
    digest = hashlib.sha256(f"{SPLIT_SEED}{object_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < VALIDATION_SHARE


def split_by_object(alerts: RealAlerts) -> tuple[RealAlerts, RealAlerts]:
    """Training and validation alerts: no object in both."""
    validation = np.array([in_validation(str(name)) for name in alerts.objects], dtype=bool)
    return alerts.select(~validation), alerts.select(validation)


def real_training_alerts(
    fink_dir: Path = FINK_ALERTS_DIR, kowalski_dir: Path = ZTF_ALERTS_DIR
) -> RealAlerts:
    """The Fink alerts of the training split, less any object the kowalski alerts hold."""
    train, _ = split_by_object(load_real_alerts(fink_dir))
    validation_objects = set(load_real_alerts(kowalski_dir).objects.tolist())
    return train.select(~np.isin(train.objects, list(validation_objects)))


def real_validation_alerts(
    fink_dir: Path = FINK_ALERTS_DIR, kowalski_dir: Path = ZTF_ALERTS_DIR
) -> dict[str, RealAlerts]:
    """The held-out real alerts by source: the Fink validation objects and the kowalski alerts."""
    _, fink = split_by_object(load_real_alerts(fink_dir))
    return {"fink held-out objects": fink, "kowalski": load_real_alerts(kowalski_dir)}

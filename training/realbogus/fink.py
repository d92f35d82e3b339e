"""Real ZTF alerts as real/bogus training data: the Fink broker's Parquet files in the shared data.

`../shared/data/real/ztf-alerts-fink/` holds 321 alert rows (264 distinct alerts: some repeat
across files) with the same stamps and candidate record as an Avro packet. Each becomes a triplet
the way the held-out alerts do (`training.realbogus.evaluate.alert_triplet`), labelled real when
ZTF's own `drb` is above 0.5, as the held-out ZTF alerts are judged. Alerts of objects in the
held-out set are left out, so no object is trained on and tested on. Each object gets its own
pair number from `first_pair`, so a split by pair keeps an object's alerts together.
"""

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from training.realbogus.dataset import Triplets
from training.realbogus.evaluate import DRB_REAL, ZTF_ALERTS_DIR, alert_triplet

FINK_ALERTS_DIR = ZTF_ALERTS_DIR.parent / "ztf-alerts-fink"
FINK_COLUMNS = ("objectId", "candidate", "cutoutScience", "cutoutTemplate", "cutoutDifference")


def read_fink_rows(fink_dir: Path = FINK_ALERTS_DIR) -> list[dict[str, Any]]:
    """Every distinct alert (by `candidate.candid`) of the Parquet files, in file order."""
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for path in sorted(Path(fink_dir).glob("*.parquet")):
        for row in pq.read_table(path, columns=list(FINK_COLUMNS)).to_pylist():
            candid = int(row["candidate"]["candid"])
            if candid not in seen and row["candidate"].get("drb") is not None:
                seen.add(candid)
                rows.append(row)
    return rows


def fink_triplets(
    exclude_objects: Collection[str], first_pair: int, fink_dir: Path = FINK_ALERTS_DIR
) -> tuple[Triplets, list[str]]:
    """Labelled triplets of the Fink alerts whose objects are not in `exclude_objects`, and the
    object of each. Empty when the folder is missing."""
    if not Path(fink_dir).is_dir():
        return empty_triplets(), []
    rows = [row for row in read_fink_rows(fink_dir) if row["objectId"] not in exclude_objects]
    if not rows:
        return empty_triplets(), []
    objects = [str(row["objectId"]) for row in rows]
    pair_of = {name: first_pair + index for index, name in enumerate(sorted(set(objects)))}
    stamps = np.stack([alert_triplet(row) for row in rows]).astype(np.float32)
    labels = np.array([row["candidate"]["drb"] > DRB_REAL for row in rows], dtype=np.int64)
    triplets = Triplets(
        stamps, labels, np.zeros(len(rows)), np.array([pair_of[name] for name in objects])
    )
    return triplets, objects


def empty_triplets() -> Triplets:
    """No triplets (the shapes of a stamp set, zero rows)."""
    return Triplets(
        np.zeros((0, 3, 31, 31), dtype=np.float32),
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        np.zeros(0, dtype=np.int64),
    )

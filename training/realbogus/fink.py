"""Real ZTF alerts as real/bogus training data: the Fink broker's Parquet files in the shared data.

`../shared/data/real/ztf-alerts-fink/` holds 321 alert rows (264 distinct alerts: some repeat
across files) with the same stamps and candidate record as an Avro packet. Only the training
split by object (`training.realbogus.real_split`) is ever trained on, less the objects of a
held-out set the caller names; each alert becomes a triplet the way the held-out alerts do,
labelled real when ZTF's own `drb` is above 0.5. Each object gets its own pair number from
`first_pair`, so a split by pair keeps an object's alerts together.
"""

from collections.abc import Collection
from pathlib import Path

import numpy as np

from training.realbogus.dataset import Triplets
from training.realbogus.real_augment import real_triplets
from training.realbogus.real_split import FINK_ALERTS_DIR, load_real_alerts, split_by_object


def fink_triplets(
    exclude_objects: Collection[str], first_pair: int, fink_dir: Path = FINK_ALERTS_DIR
) -> tuple[Triplets, list[str]]:
    """Labelled triplets of the Fink alerts of the training split whose objects are not in
    `exclude_objects`, and the object of each. Empty when the folder is missing."""
    train, _ = split_by_object(load_real_alerts(Path(fink_dir)))
    train = train.select(~np.isin(train.objects, list(exclude_objects)))
    if len(train.drb) == 0:
        return empty_triplets(), []
    triplets = real_triplets(train, 1, first_pair, np.random.default_rng(0))
    return triplets, train.objects.tolist()


def empty_triplets() -> Triplets:
    """No triplets (the shapes of a stamp set, zero rows)."""
    return Triplets(
        np.zeros((0, 3, 31, 31), dtype=np.float32),
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        np.zeros(0, dtype=np.int64),
    )

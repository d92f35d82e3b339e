"""Operators' labels from the coordinator's database, for training: each label on a detection
with the detection's stamps (new, reference, difference) as the site cut and scored them, and
each frame's quality label that counts (its latest).

This is where the coordinator and training meet (training never imports the coordinator): the
rows are read here and handed to `training.fleet_labels.write_operator_samples` and
`apply_frame_labels`. The database is only read, never migrated; a detection keeps one label (an
operator's latest), so every label is read each time, streamed in batches so that a large store
is not held in memory. Frame labels are few (a person gives each) and are read at once.
"""

from collections.abc import Iterator

import numpy as np
from pydantic import ValidationError
from sqlalchemy import Engine

from coordinator.store.frame_labels import latest_labels
from coordinator.store.labels import labels_with_stamps
from imaging.transients.cutouts import decode
from protos import TransientCutouts
from training.fleet_labels import FrameLabelRecord, OperatorLabelRecord

READ_BATCH = 500
"""Labels fetched from the database at a time: their stamps are ~11 kB each, so ~6 MB."""


def labelled_detections(
    engine: Engine,
) -> Iterator[tuple[OperatorLabelRecord, np.ndarray | str]]:
    """Every operator's label with its detection's stamps `[3, 31, 31]` (or why they cannot be
    read), oldest label first."""
    with engine.connect() as conn:
        for fields in labels_with_stamps(conn, READ_BATCH):
            stamps = _stamps(fields.pop("cutouts"))
            yield OperatorLabelRecord.model_validate(fields), stamps


def _stamps(stored: object) -> np.ndarray | str:
    """The stored cutouts as `[3, side, side]`, or why they cannot be read."""
    try:
        cutouts = TransientCutouts.model_validate(stored, strict=False)  # JSON: lists for tuples
    except ValidationError as exc:
        return f"stamps unreadable: {str(exc).splitlines()[0]}"
    return np.stack([decode(s) for s in (cutouts.new, cutouts.reference, cutouts.difference)])


def labelled_frames(engine: Engine) -> list[FrameLabelRecord]:
    """Every labelled frame's label that counts (its latest), oldest first."""
    with engine.connect() as conn:
        views = latest_labels(conn)
    return [
        FrameLabelRecord.model_validate(v.model_dump(mode="json", exclude={"note"})) for v in views
    ]

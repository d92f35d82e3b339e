"""Operators' labels as training samples, with label source `operator` (they weigh most), in the
folder that `skyfleet train fleet --samples` reads: a detection's label (real, bogus, an asteroid
or a variable) with its stamps as a real/bogus `FleetSample`, and a frame's quality label (good,
medium, bad) applied to the sites' sample of that frame.

An operator labels a candidate: a `TransientCandidate`, a detection a site published with its
new/reference/difference stamps and its real/bogus probability. The coordinator keeps those
stamps as the site cut them, and they are the real/bogus model's input as the site scored it
(`imaging.transients.cutouts`), so a label needs nothing more from the site: its sample is the
stamps, the site's verdict (its probability; real from one half) and the operator's class, which
overrides that verdict. The sample is keyed by the frame's sha256 and the candidate's message id
(`FleetSample.key`), so a site's own sample of the candidate, sent with that id, is replaced by
the operator's (`read_fleet_samples` prefers operators). A label whose stamps cannot be used
(unreadable, or another shape) is counted with why, and no sample is written for it.

An operator labels a frame's quality on the site page; the centre keeps the label by the frame's
sha256 but not the frame's tensor (the preprocessed frame only the site makes), so a frame label
becomes a sample only where a site sent a sample of that frame: `apply_frame_labels` writes, beside
the site's `<sha256>.json`, `<sha256>-operator.json` naming the same tensor with the operator's
label (the site's verdict kept as its verdict), which `read_fleet_samples` prefers for that key.
A frame label with no site sample in the folder is counted and named, and trains nothing.

Training never imports the coordinator: `skyfleet.operator_labels` reads the labels and stamps
from the coordinator's database and hands them here as `(OperatorLabelRecord, stamps)` pairs
(the stamps, or why they could not be read), and the frame labels as `FrameLabelRecord`s.
"""

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protos.base import MESSAGE_ID_PATTERN, Sha256, SiteId, UtcDatetime
from training.fleet_samples import (
    RAW_STAMPS,
    SHAPES,
    FleetSample,
    FrameRef,
    SkippedSample,
    write_fleet_sample,
)
from training.quality_net import CLASS_NAMES as QUALITY_CLASSES

REALBOGUS_CLASS: dict[str, str] = {
    "real": "real",
    "variable": "real",
    "asteroid": "real",
    "bogus": "bogus",
}
"""The real/bogus class of each label an operator gives a detection: a variable star and an
asteroid are real point sources on the difference image (what to follow up is the coordinator's
business, not the classifier's)."""
SITE_REAL_FROM = 0.5
"""The site's verdict from its real/bogus probability: real from one half, the classifier's
decision boundary (sites publish candidates above their own, higher threshold)."""


class OperatorLabelRecord(BaseModel):
    """An operator's label on a detection, as the coordinator keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(pattern=MESSAGE_ID_PATTERN, description="The candidate's id.")
    label: Literal["real", "bogus", "asteroid", "variable"]
    user_name: str = Field(max_length=128)
    at: UtcDatetime
    site_id: SiteId
    frame_sha256: Sha256
    frame_file_name: str = Field(min_length=1, max_length=512)
    real_bogus: float = Field(ge=0.0, le=1.0, description="The site's probability of real.")


class LabelsWritten(BaseModel):
    """What `write_operator_samples` did: samples written per site and per class, and the
    labels it could not use, with why."""

    by_site: dict[str, int] = Field(default_factory=dict)
    by_label: dict[str, int] = Field(default_factory=dict)
    unusable: list[SkippedSample] = Field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(self.by_site.values())


def operator_sample(record: OperatorLabelRecord) -> FleetSample:
    """The real/bogus sample of a labelled detection: the site's verdict, the operator's class."""
    verdict = "real" if record.real_bogus >= SITE_REAL_FROM else "bogus"
    confidence = record.real_bogus if verdict == "real" else 1.0 - record.real_bogus
    candidate = hashlib.sha256(record.message_id.encode()).hexdigest()[:16]
    return FleetSample(
        model="realbogus",
        site_id=record.site_id,
        frame=FrameRef(file_name=record.frame_file_name, sha256=record.frame_sha256),
        candidate=record.message_id,
        tensor_file=f"{record.frame_sha256}-{candidate}.npy",
        input_version=RAW_STAMPS,
        verdict=verdict,
        confidence=confidence,
        label=REALBOGUS_CLASS[record.label],
        label_source="operator",
        labelled_by=record.user_name,
        labelled_at=record.at,
    )


def write_operator_samples(
    folder: Path, labelled: Iterable[tuple[OperatorLabelRecord, np.ndarray | str]]
) -> LabelsWritten:
    """Write each labelled detection (its label, and its stamps or why there are none) as a
    sample into `folder/<site>/` (a label given again overwrites its sample); the labels whose
    stamps cannot be used are counted, with why."""
    by_site: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    unusable = []
    for record, stamps in labelled:
        if not isinstance(stamps, str) and stamps.shape != SHAPES["realbogus"]:
            stamps = f"stamps of shape {list(stamps.shape)}, expected {list(SHAPES['realbogus'])}"
        if isinstance(stamps, str):
            unusable.append(SkippedSample(path=record.message_id, reason=stamps))
            continue
        sample = operator_sample(record)
        write_fleet_sample(folder / record.site_id, sample, stamps)
        by_site[record.site_id] += 1
        by_label[sample.label] += 1
    return LabelsWritten(
        by_site=dict(sorted(by_site.items())),
        by_label=dict(sorted(by_label.items())),
        unusable=unusable,
    )


OPERATOR_SUFFIX = "-operator"
"""Added to the name of the site's sample a frame label is applied to, for the operator's."""


class FrameLabelRecord(BaseModel):
    """An operator's quality label on a frame (the latest it was given), as the coordinator
    keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frame_sha256: Sha256
    site_id: SiteId
    label: Literal["good", "medium", "bad"]
    user_name: str = Field(max_length=128)
    at: UtcDatetime


class FrameLabelsApplied(BaseModel):
    """What `apply_frame_labels` did: samples labelled per site and per class, and the frames
    labelled that no site sample in the folder holds (by sha256)."""

    by_site: dict[str, int] = Field(default_factory=dict)
    by_label: dict[str, int] = Field(default_factory=dict)
    without_sample: list[str] = Field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(self.by_site.values())


def _site_quality_samples(folder: Path) -> dict[str, tuple[FleetSample, Path]]:
    """The sites' own quality samples under `folder` by frame sha256 (the first by path when a
    frame was sent twice); files that are not samples are left to `read_fleet_samples` to
    report."""
    found: dict[str, tuple[FleetSample, Path]] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            sample = FleetSample.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            continue
        if sample.model == "quality" and sample.label_source == "site-verdict":
            found.setdefault(sample.frame.sha256, (sample, path))
    return found


def apply_frame_labels(folder: Path, records: Iterable[FrameLabelRecord]) -> FrameLabelsApplied:
    """Write each frame label as an operator's sample beside the site's sample of that frame
    (the same tensor; a label given again overwrites it); count the labels no sample holds."""
    samples = _site_quality_samples(folder)
    by_site: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    without = []
    for record in records:
        if record.frame_sha256 not in samples:
            without.append(record.frame_sha256)
            continue
        sample, path = samples[record.frame_sha256]
        labelled = sample.model_dump() | {
            "label": record.label,
            "label_source": "operator",
            "labelled_by": record.user_name,
            "labelled_at": record.at,
        }
        operator = FleetSample.model_validate(labelled)
        target = path.with_name(f"{path.stem}{OPERATOR_SUFFIX}.json")
        target.write_text(operator.model_dump_json(indent=2) + "\n")
        by_site[sample.site_id] += 1
        by_label[record.label] += 1
    return FrameLabelsApplied(
        by_site=dict(sorted(by_site.items())),
        by_label={name: by_label[name] for name in QUALITY_CLASSES if by_label[name]},
        without_sample=without,
    )

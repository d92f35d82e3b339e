"""Samples the sites send for retraining: the file format, and reading a folder of them.

A sample is two files in a folder: `<name>.json`, a `FleetSample` (which site and frame, the
model's input as the site made it, the site's metrics and verdict, the label and where the
label came from), and the tensor it names (`tensor_file`, a `.npy` beside it): for the quality
model the preprocessed frame `[1, 128, 128]` float32 (`imaging.preprocess`), for real/bogus the
raw new/reference/difference stamps `[3, 31, 31]`. Samples are keyed by the frame's identity
(its sha256, and for real/bogus the detection: its `TransientCandidate` message id, the identity
the console labels it by, or else its index in the frame): a frame sent twice is trained on
once, with its operator's label if it has one (the latest, if several). An operator's label on
a detection is written as a sample by `training.fleet_labels` from the stamps the coordinator
keeps; it names the frame by file name and sha256 only (`FrameRef`: the centre does not know
the frame's size).

Where a label comes from decides how much it counts:
- `operator`: a person looked at the frame in the console; repeated `operator_weight` times in
  the training split, so it weighs most;
- `site-verdict`: the site's own verdict, used once and only when its confidence is at least
  `min_verdict_confidence` (a confident verdict of the serving model; less confident ones would
  teach the new model the old one's doubts).

Sites keep their samples in a JetStream Object Store bucket on their own server
(`site_agent.samples`, `protos.streams.site_sample_bucket`); `download_site_samples` copies each
site's bucket into `<folder>/<site>/` through the hub (the site's JetStream domain), which is
what `skyfleet model samples` does before `skyfleet train fleet --samples <folder>`. A site that
cannot be reached is reported and the others are read; an object whose name is not a sample's
is skipped. `write_fleet_sample` writes one sample by hand (tests, tools).
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

import numpy as np
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imaging.preprocess import INPUT_SHAPE, PREPROCESS_VERSION
from imaging.transients.realbogus import CLASS_NAMES as REALBOGUS_CLASSES
from imaging.transients.realbogus import INPUT_SHAPE as REALBOGUS_SHAPE
from protos import FrameIdentity, ImageMetrics, ModelRef
from protos.base import MESSAGE_ID_PATTERN, Sha256, SiteId, UtcDatetime
from protos.streams import site_domain, site_sample_bucket
from training.quality_net import CLASS_NAMES as QUALITY_CLASSES

RAW_STAMPS = "raw-stamps"
"""`input_version` of real/bogus samples: raw stamps, normalised by training as by the site."""
CLASSES = {"quality": QUALITY_CLASSES, "realbogus": REALBOGUS_CLASSES}
SHAPES = {"quality": INPUT_SHAPE, "realbogus": REALBOGUS_SHAPE}
INPUT_VERSIONS = {"quality": PREPROCESS_VERSION, "realbogus": RAW_STAMPS}
LabelSource = Literal["operator", "site-verdict"]
ModelName = Literal["quality", "realbogus"]
SAMPLE_OBJECT = re.compile(r"^[0-9a-f]{64}(#[0-9]{1,6})?\.(json|npy)$")
"""The name of a sample's object in a site's bucket: the frame's sha256 (and detection)."""


class FrameRef(BaseModel):
    """A frame known by its file name and sha256 only (a detection's frame, at the centre)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file_name: str = Field(min_length=1, max_length=512)
    sha256: Sha256


class FleetSample(BaseModel):
    """One training sample from a site (`<name>.json`, its tensor beside it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    model: ModelName = "quality"
    site_id: SiteId
    frame: FrameIdentity | FrameRef
    detection: int | None = Field(
        default=None, ge=0, description="Real/bogus: the detection's index in the frame."
    )
    candidate: str | None = Field(
        default=None,
        pattern=MESSAGE_ID_PATTERN,
        description="Real/bogus: the detection's `TransientCandidate` message id.",
    )
    tensor_file: str = Field(pattern=r"^[^/\\]+\.npy$", description="The .npy beside this file.")
    input_version: str = Field(description="Preprocessing (quality) or 'raw-stamps'.")
    metrics: ImageMetrics | None = None
    verdict: str = Field(description="The class the site gave it.")
    confidence: float = Field(ge=0.0, le=1.0, description="The site's probability of it.")
    scored_by: ModelRef | None = None
    label: str = Field(description="The class to train it as.")
    label_source: LabelSource
    labelled_by: str | None = Field(default=None, max_length=128)
    labelled_at: UtcDatetime

    @model_validator(mode="after")
    def _classes_of_the_model(self) -> Self:
        classes = CLASSES[self.model]
        for name, value in (("verdict", self.verdict), ("label", self.label)):
            if value not in classes:
                raise ValueError(f"{name} {value!r} is not one of {list(classes)}")
        if self.label_source == "site-verdict" and self.label != self.verdict:
            raise ValueError("a label from the site's verdict must be that verdict")
        return self

    @property
    def key(self) -> str:
        """The frame's identity (and the detection's), one sample per key."""
        if self.candidate is not None:
            return f"{self.frame.sha256}@{self.candidate}"
        suffix = "" if self.detection is None else f"#{self.detection}"
        return f"{self.frame.sha256}{suffix}"


class SkippedSample(BaseModel):
    """A sample file not used, and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str


@dataclass
class FleetSampleSet:
    """The usable samples of a folder for one model: tensors, class indices, and per sample its
    site, label source and key; with the files skipped and why."""

    tensors: np.ndarray
    labels: np.ndarray
    sites: list[str]
    label_sources: list[str]
    keys: list[str]
    skipped: list[SkippedSample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self, what: Literal["sites", "label_sources"]) -> dict[str, int]:
        """Samples per site or per label source."""
        return dict(sorted(Counter(getattr(self, what)).items()))


def write_fleet_sample(folder: Path, sample: FleetSample, tensor: np.ndarray) -> Path:
    """Write a sample's tensor and its JSON into `folder`; returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / sample.tensor_file, np.asarray(tensor, dtype=np.float32))
    path = folder / f"{Path(sample.tensor_file).stem}.json"
    path.write_text(sample.model_dump_json(indent=2) + "\n")
    return path


def _read_one(path: Path, model: ModelName) -> FleetSample | str | None:
    """A sample of `model`, why it is unusable, or None when it is another model's."""
    try:
        sample = FleetSample.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        return f"not a fleet sample: {' '.join(first)}"
    if sample.model != model:
        return None
    if sample.input_version != INPUT_VERSIONS[model]:
        return f"made with input {sample.input_version!r}, training uses {INPUT_VERSIONS[model]!r}"
    return sample


def _tensor(path: Path, model: ModelName) -> np.ndarray | str:
    """The sample's tensor, or why it is unusable."""
    try:
        tensor = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return f"tensor unreadable ({exc})"
    if tensor.shape != SHAPES[model]:
        return f"tensor shape {list(tensor.shape)}, expected {list(SHAPES[model])}"
    if model == "quality" and not np.all(np.isfinite(tensor)):
        return "tensor holds non-finite values"
    return tensor.astype(np.float32)


def _preferred(current: FleetSample | None, new: FleetSample) -> bool:
    """Whether `new` should replace `current` for the same key: operators over verdicts, then
    the latest label."""
    if current is None:
        return True
    rank = {"operator": 1, "site-verdict": 0}
    return (rank[new.label_source], new.labelled_at) > (
        rank[current.label_source],
        current.labelled_at,
    )


def read_fleet_samples(
    folder: Path, model: ModelName, min_verdict_confidence: float = 0.9
) -> FleetSampleSet:
    """The usable samples of `model` under `folder` (searched recursively), one per key."""
    chosen: dict[str, tuple[FleetSample, Path]] = {}
    skipped: list[SkippedSample] = []
    for path in sorted(folder.rglob("*.json")):
        read = _read_one(path, model)
        if read is None:
            continue
        if isinstance(read, str):
            skipped.append(SkippedSample(path=str(path), reason=read))
            continue
        if read.label_source == "site-verdict" and read.confidence < min_verdict_confidence:
            reason = f"site verdict at confidence {read.confidence:.2f}, below "
            reason += f"{min_verdict_confidence:.2f}: not used as a label"
            skipped.append(SkippedSample(path=str(path), reason=reason))
            continue
        if _preferred(chosen.get(read.key, (None, path))[0], read):
            chosen[read.key] = (read, path)
    tensors, kept = [], []
    for key in sorted(chosen):
        sample, path = chosen[key]
        tensor = _tensor(path.parent / sample.tensor_file, model)
        if isinstance(tensor, str):
            skipped.append(SkippedSample(path=str(path), reason=tensor))
            continue
        tensors.append(tensor)
        kept.append(sample)
    classes = CLASSES[model]
    shape = (0, *SHAPES[model])
    return FleetSampleSet(
        tensors=np.stack(tensors) if tensors else np.zeros(shape, dtype=np.float32),
        labels=np.array([classes.index(s.label) for s in kept], dtype=np.int64),
        sites=[s.site_id for s in kept],
        label_sources=[s.label_source for s in kept],
        keys=[s.key for s in kept],
        skipped=skipped,
    )


def training_repeats(label_sources: list[str], operator_weight: int) -> np.ndarray:
    """How many times each sample enters the training split: operators' labels weigh most."""
    return np.array(
        [operator_weight if source == "operator" else 1 for source in label_sources],
        dtype=np.int64,
    )


class SampleDownload(BaseModel):
    """What `download_site_samples` copied: objects per site, and the sites not read and why."""

    objects: dict[str, int] = Field(default_factory=dict)
    unreachable: dict[str, str] = Field(default_factory=dict)


async def download_site_samples(
    nc: Client, site_ids: list[str], folder: Path, *, through_domains: bool = True
) -> SampleDownload:
    """Copy each site's sample bucket into `folder/<site>/`; `through_domains`: reach the
    buckets in the sites' JetStream domains (a hub), else on the server `nc` is connected to."""
    result = SampleDownload()
    for site_id in site_ids:
        js = nc.jetstream(domain=site_domain(site_id) if through_domains else None, timeout=10.0)
        target = folder / site_id
        try:
            store = await js.object_store(site_sample_bucket(site_id))
            try:
                infos = await store.list(ignore_deletes=True)
            except NotFoundError:
                infos = []
            target.mkdir(parents=True, exist_ok=True)
            copied = 0
            for info in infos:
                if info.deleted or not SAMPLE_OBJECT.match(info.name or ""):
                    continue
                (target / info.name).write_bytes((await store.get(info.name)).data or b"")
                copied += 1
        except (NatsError, TimeoutError) as exc:
            result.unreachable[site_id] = repr(exc)
            continue
        result.objects[site_id] = copied
    return result

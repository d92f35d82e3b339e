"""What a fleet retraining run leaves behind: `record.json` (`FleetRunRecord`), the gate's plot
and the gate's section of the model card.

The record is what the console lists: what the run trained on (counts by source, site, label
and label source, how many samples carried an operator's label, and the samples it skipped),
the held-out set it was judged on (version and content hash), both models' metrics side by
side, the gate's verdict in words, the version it released (or where the rejected candidate is
kept), every artifact with its sha256, the command line and how long each stage took. It is
plain JSON; `FleetRunRecord.model_json_schema()` describes it for readers that do not import
training.
"""

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

from protos.base import UtcDatetime
from training.fleet_samples import SkippedSample
from training.gate import GateVerdict, MetricComparison
from training.holdout import HoldoutInfo

RECORD_FILE = "record.json"


class Artifact(BaseModel):
    """A file the run wrote, and its sha256."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Relative to the run folder when inside it.")
    sha256: str
    bytes: int


class DataCounts(BaseModel):
    """What the candidate was trained on (training and validation splits together)."""

    by_source: dict[str, int] = Field(description="simulated, fleet, ztf-fink ...")
    by_site: dict[str, int] = Field(description="The sites' ids; 'simulated' and 'ztf' too.")
    by_label: dict[str, int]
    by_label_source: dict[str, int] = Field(description="simulation, operator, site-verdict ...")
    operator_weight: int = Field(description="Times an operator's label enters training.")
    skipped: list[SkippedSample] = Field(default_factory=list)

    @computed_field(description="Samples trained with an operator's label (each counted once).")
    def operator_labels(self) -> int:
        return self.by_label_source.get("operator", 0)


class ServingRef(BaseModel):
    """The model the candidate was compared with."""

    model_config = ConfigDict(frozen=True)

    version_dir: str
    version: int
    source: Literal["repository", "shipped"]


class FleetRunRecord(BaseModel):
    """One fleet retraining run, as `record.json`."""

    schema_version: Literal[1] = 1
    run_id: str
    model: Literal["quality", "realbogus"]
    outcome: Literal["promoted", "rejected"]
    reason: str
    command: str
    started_at: UtcDatetime
    finished_at: UtcDatetime
    timings_s: dict[str, float]
    data: DataCounts
    holdout: HoldoutInfo
    serving: ServingRef | None
    released_version: int | None
    released_dir: str | None
    signed: bool
    rejected_dir: str | None
    metrics: list[MetricComparison] = Field(description="Both models side by side.")
    verdict: GateVerdict
    artifacts: list[Artifact]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifacts_of(paths: Iterable[Path], run_dir: Path) -> list[Artifact]:
    """Each existing file with its sha256 and size (paths inside `run_dir` made relative)."""
    found = []
    for path in paths:
        if not path.is_file():
            continue
        shown = path.relative_to(run_dir) if path.is_relative_to(run_dir) else path
        found.append(Artifact(path=str(shown), sha256=file_sha256(path), bytes=path.stat().st_size))
    return found


def plot_gate(verdict: GateVerdict, path: Path) -> Path:
    """Both models' metrics on the held-out set as paired bars (a PNG)."""
    rows = [r for r in verdict.comparison if r.candidate is not None]
    names = [r.name for r in rows]
    candidate = [r.candidate or 0.0 for r in rows]
    serving = [r.serving if r.serving is not None else np.nan for r in rows]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2.0), 4.0))
    positions = np.arange(len(rows))
    axes.bar(positions - 0.2, serving, width=0.4, label="serving", color="#999999")
    axes.bar(positions + 0.2, candidate, width=0.4, label="candidate", color="#1f77b4")
    axes.set_xticks(positions, names, rotation=30, ha="right")
    outcome = "promoted" if verdict.promoted else "rejected"
    axes.set(ylim=(0, 1.05), title=f"Held-out set: candidate {outcome}")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def gate_markdown(verdict: GateVerdict, holdout: HoldoutInfo) -> str:
    """The gate's section of the model card: the held-out set, both models, the verdict."""
    serving = verdict.serving.model if verdict.serving else "none"
    rows = "\n".join(
        f"| {r.name} | {_number(r.candidate)} | {_number(r.serving)} |" for r in verdict.comparison
    )
    return f"""
## The gate (held-out set {holdout.version})
Content sha256 `{holdout.sha256}`, {holdout.samples} samples: {holdout.by_source}.
Primary metric `{verdict.policy.metric}`, margin {verdict.policy.margin:g}; serving model:
{serving}.

| metric | candidate | serving |
| --- | --- | --- |
{rows}

**{"Promoted" if verdict.promoted else "Rejected"}.** {verdict.reason}
"""


def run_id_of(run_dir: Path, started_at: datetime) -> str:
    """A run's id: its folder's name and its start in UTC."""
    return f"{run_dir.name}-{started_at:%Y%m%dT%H%M%SZ}"


def primary_summary(record: FleetRunRecord) -> str:
    """Both models' primary metric, e.g. 'accuracy 0.9120 vs 0.8870 (quality v5 (repository))'."""
    verdict = record.verdict
    metric = verdict.policy.metric
    value = _number(verdict.candidate.metrics.get(metric))
    if verdict.serving is None:
        return f"{metric} {value}, no serving model"
    before = _number(verdict.serving.metrics.get(metric))
    return f"{metric} {value} vs {before} ({verdict.serving.model})"


def summary_line(record: FleetRunRecord, record_path: Path) -> str:
    """A run in one line, for a schedule's log."""
    what = f"promoted as v{record.released_version}" if record.outcome == "promoted" else "rejected"
    return (
        f"{record.started_at:%Y-%m-%d %H:%M}Z {record.model}: {what}, "
        f"{primary_summary(record)}; {record_path}"
    )

"""One fleet retraining run, end to end (`skyfleet train fleet`): held-out set, data, fit,
both models on the held-out set, the gate, release or rejection, and the run's record.

What differs between the quality and the real/bogus model is a `Recipe`
(`training.fleet_quality`, `training.fleet_realbogus`): how its held-out set is made, how its
data is assembled and fitted (the existing Ray Train function either way), how a version folder
is scored, and how a candidate is released. What is the same is here:

1. the release key and the samples folder are checked and the held-out set is read (built the
   first time) before any training, so a run that could not finish fails at once;
2. the serving model is the highest version of the model in the repository (with
   `compare_with_shipped`, the shipped model when the repository has none);
3. the candidate is written as a version folder of its own (`RUN/candidate`) and both models
   are loaded the way a site loads them and scored on the same held-out arrays;
4. the gate (`training.gate`) decides. Promoted: the candidate is released into the repository
   as the next free version (reserved, so two racing runs never collide; published in one
   rename; signed first when a release key is configured). Rejected: it is moved to
   `RUN/rejected/` with `REJECTED.txt` saying why;
5. `RUN/record.json`, `RUN/MODEL_CARD.md` (with the gate's section) and `RUN/gate.png`.
"""

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from imaging.model_signature import ModelSignatureError, sign_version
from training.fleet_config import FleetTrainingSettings
from training.fleet_record import (
    RECORD_FILE,
    DataCounts,
    FleetRunRecord,
    ServingRef,
    artifacts_of,
    gate_markdown,
    plot_gate,
    run_id_of,
)
from training.gate import GateVerdict, ModelScores, judge
from training.holdout import HoldoutInfo
from training.train_quality import MODEL_CARD_FILE, RunProgress
from training.versions import released_versions

CANDIDATE_DIR = "candidate"
REJECTED_DIR = "rejected"
REJECTED_NOTE = "REJECTED.txt"
GATE_PLOT = "gate.png"


class FleetRunError(RuntimeError):
    """A fleet run that cannot go on (no data, an unusable key or serving model)."""


@dataclass
class Candidate:
    """A fitted candidate: its version folder, what it was trained on, its model card (given the
    version it was released as, or None), how to release it (`release(first_version, key_seed)`
    -> the version folder published) and the other files it wrote (plots, logs)."""

    version_dir: Path
    data: DataCounts
    card: Callable[[int | None], str]
    release: Callable[[int, str | None], Path]
    files: list[Path] = field(default_factory=list)


class Recipe(Protocol):
    """What one model's fleet run needs from its own module."""

    name: str
    shipped_dir: Path

    def holdout(self, settings: FleetTrainingSettings, tell: RunProgress) -> Any: ...

    def holdout_info(self, holdout: Any) -> HoldoutInfo: ...

    def train(
        self, settings: FleetTrainingSettings, holdout: Any, tell: RunProgress
    ) -> Candidate: ...

    def score(self, version_dir: Path, holdout: Any, label: str) -> ModelScores: ...


def recipe_for(settings: FleetTrainingSettings) -> Recipe:
    """The recipe of the model the settings name (imported only when used)."""
    if settings.fleet_model == "quality":
        from training.fleet_quality import QualityRecipe

        return QualityRecipe(settings.model_name)
    from training.fleet_realbogus import RealBogusRecipe

    return RealBogusRecipe()


def find_serving(model_dir: Path, shipped_dir: Path | None) -> ServingRef | None:
    """The highest version in `model_dir`; else the shipped model's (when given); else None."""
    versions = released_versions(model_dir)
    if versions:
        return ServingRef(
            version_dir=str(model_dir / str(versions[-1])),
            version=versions[-1],
            source="repository",
        )
    shipped = released_versions(shipped_dir) if shipped_dir is not None else []
    if shipped_dir is not None and shipped:
        return ServingRef(
            version_dir=str(shipped_dir / str(shipped[-1])), version=shipped[-1], source="shipped"
        )
    return None


def checked_release_key(settings: FleetTrainingSettings, scratch: Path) -> str | None:
    """The release key's seed, tried on a scratch manifest so a bad key fails before training."""
    try:
        seed = settings.release_key_seed()
    except OSError as exc:
        raise FleetRunError(f"release key {settings.release_key_file}: {exc.strerror}") from exc
    if seed is None:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "manifest.json").write_text("{}")
    try:
        sign_version(scratch, seed)
    except ModelSignatureError as exc:
        raise FleetRunError(f"release key {settings.release_key_file}: {exc}") from exc
    finally:
        for path in scratch.iterdir():
            path.unlink()
        scratch.rmdir()
    return seed


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - started, 3)


def _reject(candidate: Candidate, run_dir: Path, verdict: GateVerdict) -> Path:
    """Keep the rejected candidate in `RUN/rejected/` with the reason beside it."""
    rejected = run_dir / REJECTED_DIR
    shutil.rmtree(rejected, ignore_errors=True)  # a run repeated in the same folder
    candidate.version_dir.rename(rejected)
    (rejected / REJECTED_NOTE).write_text(verdict.reason + "\n")
    return rejected


def run_fleet_training(
    settings: FleetTrainingSettings,
    progress: RunProgress | None = None,
    command: str | None = None,
) -> FleetRunRecord:
    """The whole fleet run (module docstring); its record, also written to `RUN/record.json`."""
    tell = progress or (lambda stage, done, total, detail="": None)
    recipe = recipe_for(settings)
    started_at = datetime.now(UTC)
    timings: dict[str, float] = {}
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = checked_release_key(settings, run_dir / ".key-check")
    if settings.samples_dir is not None and not settings.samples_dir.is_dir():
        raise FleetRunError(f"samples folder {settings.samples_dir} does not exist")
    with _timed(timings, "holdout"):
        holdout = recipe.holdout(settings, tell)
    model_dir = settings.fleet_model_dir
    serving = find_serving(model_dir, recipe.shipped_dir if settings.compare_with_shipped else None)
    with _timed(timings, "data_and_fit"):
        candidate = recipe.train(settings, holdout, tell)
    with _timed(timings, "evaluate"):
        tell("gate", 0, 2, "scoring the candidate on the held-out set")
        candidate_scores = recipe.score(candidate.version_dir, holdout, CANDIDATE_DIR)
        serving_scores = None
        if serving is not None:
            tell("gate", 1, 2, f"scoring the serving model v{serving.version}")
            label = f"{recipe.name} v{serving.version} ({serving.source})"
            serving_scores = recipe.score(Path(serving.version_dir), holdout, label)
    verdict = judge(candidate_scores, serving_scores, settings.policy)
    tell("gate", 2, 2, verdict.reason)
    released: Path | None = None
    rejected: Path | None = None
    if verdict.promoted:
        with _timed(timings, "release"):
            first = serving.version + 1 if serving is not None else 1
            released = candidate.release(first, seed)
        tell("export", 1, 1, str(released))
    else:
        rejected = _reject(candidate, run_dir, verdict)
    info = recipe.holdout_info(holdout)
    version = int(released.name) if released is not None else None
    card = candidate.card(version) + gate_markdown(verdict, info)
    (run_dir / MODEL_CARD_FILE).write_text(card)
    if released is not None:
        (released / MODEL_CARD_FILE).write_text(card)
    plot_gate(verdict, run_dir / GATE_PLOT)
    kept = released or rejected
    model_files = sorted(kept.iterdir()) if kept is not None else []
    files = [*model_files, run_dir / MODEL_CARD_FILE, run_dir / GATE_PLOT, *candidate.files]
    record = FleetRunRecord(
        run_id=run_id_of(run_dir, started_at),
        model=settings.fleet_model,
        outcome="promoted" if verdict.promoted else "rejected",
        reason=verdict.reason,
        command=command or settings.command_line(),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        timings_s=timings,
        data=candidate.data,
        holdout=info,
        serving=serving,
        released_version=version,
        released_dir=str(released) if released is not None else None,
        signed=released is not None and seed is not None,
        rejected_dir=str(rejected) if rejected is not None else None,
        metrics=verdict.comparison,
        verdict=verdict,
        artifacts=artifacts_of(files, run_dir),
    )
    (run_dir / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    return record

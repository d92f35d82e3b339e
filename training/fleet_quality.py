"""The quality model's part of a fleet run (`QualityRecipe` of `training.fleet_run`).

Data: the simulated base set (`data_dir`, simulated there if short, preprocessed once into a
cache beside it, `<data_dir>.dataset/`, split 70/15/15 as `skyfleet train quality` splits) plus
the sites' samples (`training.fleet_samples`): each sample goes to the training split (repeated
`operator_weight` times when an operator labelled it) or, for a fixed 15 % chosen by its key's
hash, to the validation split; the test split stays the base set's. The combined splits are
written to `RUN/dataset/`, where the quality run's Ray Train function (`training.ray_fit`) reads
them, so the fit is the very same as `skyfleet train quality`'s.

The candidate is `PanelSymmetricNet` (what sites run) written as a version folder
(`RUN/candidate`); it is released with `training.export.export_to_repository` (TorchScript and
ONNX checked against the eager model, next free version, signed before it appears).
"""

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from imaging.quality_model import MODEL_FILE, write_model
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from training.config import QualityTrainingSettings
from training.dataset import (
    SPLIT_FRACTIONS,
    SPLIT_NAMES,
    SUMMARY_FILE,
    DatasetSummary,
    LabelledArrays,
    build_dataset,
    load_split,
    save_split,
)
from training.engine import EPOCH_LOG_FILE
from training.evaluate import plot_confusion_matrix, plot_training_history
from training.export import export_to_repository
from training.fleet_config import FleetTrainingSettings
from training.fleet_record import DataCounts
from training.fleet_run import CANDIDATE_DIR, Candidate, FleetRunError
from training.fleet_samples import (
    FleetSampleSet,
    SkippedSample,
    read_fleet_samples,
    training_repeats,
)
from training.gate import ModelScores
from training.holdout import (
    HoldoutInfo,
    QualityHoldout,
    build_quality_holdout,
    describe,
    holdout_exists,
    load_quality_holdout,
)
from training.holdout_scores import score_quality_model
from training.quality_net import CLASS_NAMES, PanelSymmetricNet
from training.train_quality import (
    RunProgress,
    evaluate_test_split,
    fit_quality,
    quality_card,
    simulate_if_missing,
)

FLEET_VAL_PERCENT = 15
"""Fleet samples whose key hashes below this (of 100) validate instead of train."""


def in_validation(keys: list[str]) -> np.ndarray:
    """Which samples validate: a fixed 15 % by the hash of their key (the same every run)."""
    return np.array(
        [
            int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < FLEET_VAL_PERCENT
            for key in keys
        ],
        dtype=bool,
    )


def read_samples(settings: FleetTrainingSettings, model: str) -> FleetSampleSet | None:
    """The sites' samples for `model`, or None when the run has no samples folder."""
    if settings.samples_dir is None:
        return None
    if not settings.samples_dir.is_dir():
        raise FleetRunError(f"samples folder {settings.samples_dir} does not exist")
    return read_fleet_samples(
        settings.samples_dir,
        "quality" if model == "quality" else "realbogus",
        settings.min_verdict_confidence,
    )


def _fleet_part(
    samples: FleetSampleSet, keep: np.ndarray, repeats: np.ndarray | None
) -> LabelledArrays:
    """The chosen samples as split arrays (repeated for training); target = label, no floor."""
    chosen = np.flatnonzero(keep)
    if repeats is not None:
        chosen = np.repeat(chosen, repeats[chosen])
    files = np.array([f"fleet/{samples.sites[i]}/{samples.keys[i]}" for i in chosen], dtype=str)
    labels = samples.labels[chosen]
    return LabelledArrays(
        images=samples.tensors[chosen],
        labels=labels,
        targets=labels,
        floors=np.zeros(len(chosen), dtype=np.int64),
        files=files,
    )


def _joined(base: LabelledArrays, extra: LabelledArrays) -> LabelledArrays:
    return LabelledArrays(
        images=np.concatenate([base.images, extra.images]).astype(np.float32),
        labels=np.concatenate([base.labels, extra.labels]),
        targets=np.concatenate([base.targets, extra.targets]),
        floors=np.concatenate([base.floors, extra.floors]),
        files=np.concatenate([base.files.astype(str), extra.files.astype(str)]),
    )


def _counts(
    base: DatasetSummary, samples: FleetSampleSet | None, operator_weight: int
) -> DataCounts:
    """Train and validation samples by source, site, label and label source."""
    base_labels: Counter[str] = Counter()
    for split in ("train", "val"):
        base_labels.update(base.split_counts[split])
    simulated = sum(base_labels.values())
    labels = Counter(base_labels)
    skipped = [SkippedSample(path=frame.path, reason=frame.reason) for frame in base.skipped]
    by_site = {"simulated": simulated}
    by_label_source = {"simulation": simulated}
    fleet = 0
    if samples is not None:
        fleet = len(samples)
        labels.update(CLASS_NAMES[label] for label in samples.labels)
        by_site |= samples.counts("sites")
        by_label_source |= samples.counts("label_sources")
        skipped += samples.skipped
    return DataCounts(
        by_source={"simulated": simulated, "fleet": fleet},
        by_site=by_site,
        by_label={name: labels.get(name, 0) for name in CLASS_NAMES},
        by_label_source=by_label_source,
        operator_weight=operator_weight,
        skipped=skipped,
    )


def assemble_quality_data(
    settings: FleetTrainingSettings, quality: QualityTrainingSettings, tell: RunProgress
) -> tuple[DatasetSummary, DataCounts]:
    """Write the combined splits into `RUN/dataset/`; their summary and the run's counts."""
    simulate_if_missing(quality, tell)
    base_cache = quality.data_dir.with_name(quality.data_dir.name + ".dataset")
    base = build_dataset(
        quality.data_dir,
        base_cache,
        quality.seed,
        progress=lambda done, total: tell("dataset", done, total),
        jobs=quality.simulate_jobs,
    )
    samples = read_samples(settings, "quality")
    split_counts: dict[str, dict[str, int]] = {}
    digest = hashlib.sha256(f"{base.fingerprint}|{settings.operator_weight}".encode())
    for split in SPLIT_NAMES:
        arrays = load_split(base_cache, split)
        if samples is not None and split != "test":
            validating = in_validation(samples.keys)
            if split == "train":
                repeats = training_repeats(samples.label_sources, settings.operator_weight)
                arrays = _joined(arrays, _fleet_part(samples, ~validating, repeats))
            else:
                arrays = _joined(arrays, _fleet_part(samples, validating, None))
        save_split(quality.dataset_dir, split, arrays)
        digest.update(arrays.files.astype(str).tobytes())
        counts = np.bincount(arrays.labels, minlength=len(CLASS_NAMES))
        split_counts[split] = dict(zip(CLASS_NAMES, counts.tolist(), strict=True))
    if samples is not None:
        tell("samples", 1, 1, f"{len(samples)} fleet samples used, {len(samples.skipped)} skipped")
    source = f"{quality.data_dir} (simulated)"
    if settings.samples_dir is not None:
        source += f" + {settings.samples_dir} (fleet samples)"
    summary = DatasetSummary(
        source_dir=source,
        fingerprint=digest.hexdigest(),
        preprocess_version=base.preprocess_version,
        seed=quality.seed,
        class_names=list(CLASS_NAMES),
        split_fractions=list(SPLIT_FRACTIONS),
        split_counts=split_counts,
        skipped=base.skipped,
    )
    (quality.dataset_dir / SUMMARY_FILE).write_text(summary.model_dump_json(indent=2))
    return summary, _counts(base, samples, settings.operator_weight)


class QualityRecipe:
    """The quality model in a fleet run."""

    shipped_dir: Path = SHIPPED_QUALITY_MODEL_DIR

    def __init__(self, name: str = "quality") -> None:
        self.name = name

    def holdout(self, settings: FleetTrainingSettings, tell: RunProgress) -> QualityHoldout:
        """The held-out set's folder read, or built (simulated) the first time."""
        folder = settings.holdout_folder
        if holdout_exists(folder):
            holdout = load_quality_holdout(folder)
        else:
            holdout = build_quality_holdout(
                folder,
                settings.holdout_per_class,
                progress=lambda done, total: tell("holdout", done, total),
            )
        tell("holdout", 1, 1, describe(holdout.info))
        return holdout

    def holdout_info(self, holdout: QualityHoldout) -> HoldoutInfo:
        """What the set is."""
        return holdout.info

    def score(self, version_dir: Path, holdout: QualityHoldout, label: str) -> ModelScores:
        """A version folder on the held-out set, as a site scores frames."""
        return score_quality_model(version_dir, holdout, label)[0]

    def train(
        self, settings: FleetTrainingSettings, holdout: QualityHoldout, tell: RunProgress
    ) -> Candidate:
        """Assemble the data, fit on Ray Train (or locally), write the candidate's folder."""
        quality = settings.quality_settings()
        summary, counts = assemble_quality_data(settings, quality, tell)
        fit = fit_quality(quality, tell)
        served = PanelSymmetricNet(fit.model).eval()
        run_dir = settings.run_dir
        version_dir = run_dir / CANDIDATE_DIR
        shutil.rmtree(version_dir, ignore_errors=True)  # a run repeated in the same folder
        write_model(served, version_dir, name=self.name, version=CANDIDATE_DIR)
        tested = evaluate_test_split(quality, served, tell)
        size = (version_dir / MODEL_FILE).stat().st_size

        def card(version: int | None) -> str:
            return quality_card(quality, summary, fit, tested, version, size).to_markdown()

        def release(first_version: int, key_seed: str | None) -> Path:
            exported = export_to_repository(
                served,
                settings.model_repository_dir,
                None,
                verification_batch=holdout.images[:8],
                name=self.name,
                sign_with=key_seed,
                first_version=first_version,
            )
            return exported.version_dir

        plots = [
            plot_training_history(fit.history, run_dir / "history.png"),
            plot_confusion_matrix(tested.evaluation, run_dir / "confusion.png"),
        ]
        files = [*plots, run_dir / EPOCH_LOG_FILE, quality.dataset_dir / SUMMARY_FILE]
        return Candidate(version_dir, counts, card, release, files)

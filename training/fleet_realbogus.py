"""The real/bogus model's part of a fleet run (`RealBogusRecipe` of `training.fleet_run`).

Data: the simulated base triplets (`realbogus_data_dir/triplets.npz`, simulated once with the
real/bogus run's data seed), the shared real ZTF alerts of the Fink broker labelled by ZTF's
`drb` (`training.realbogus.fink`, without the objects of the held-out set; `real_alerts`), and
the sites' real/bogus samples (`training.fleet_samples`, an operator's label repeated
`operator_weight` times). They are written as one triplet file, `RUN/data/triplets.npz`, and
fitted by the real/bogus run's Ray Train function (`training.realbogus.train`), whose knobs
(epochs, learning rate, a model to fine-tune) are `SKYFLEET_RB_*`; workers and GPUs are the
fleet run's. Real stamps and samples get pair numbers from `FIRST_REAL_PAIR` on, so they are
split by object and never laid over simulated hosts.

A candidate is released by writing it into a staging folder beside the versions, loading it
there as a site would, signing it (with a key) and publishing it under the next free version.
"""

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from imaging.model_signature import sign_version
from imaging.shipped_models import SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.realbogus import CLASS_NAMES, RealBogusModel, write_realbogus_model
from training.engine import EPOCH_LOG_FILE
from training.evaluate import EpochMetrics, plot_training_history
from training.fleet_config import FleetTrainingSettings
from training.fleet_quality import read_samples
from training.fleet_record import DataCounts
from training.fleet_run import CANDIDATE_DIR, Candidate
from training.fleet_samples import FleetSampleSet, training_repeats
from training.gate import ModelScores
from training.holdout import (
    HoldoutInfo,
    RealBogusHoldout,
    build_realbogus_holdout,
    describe,
    holdout_exists,
    load_realbogus_holdout,
)
from training.holdout_scores import score_realbogus_model
from training.realbogus.dataset import FIRST_REAL_PAIR, Triplets, simulate_triplets
from training.realbogus.fink import empty_triplets, fink_triplets
from training.realbogus.run import SIMULATED_FRAME_SIDE_PX
from training.realbogus.train import RealBogusTrainingSettings, fit_realbogus_on_ray
from training.train_quality import RunProgress
from training.versions import publish_version, reserved_version

FLEET_FIRST_PAIR = FIRST_REAL_PAIR + 500_000
"""Pair numbers of the sites' samples (one each); the Fink objects' come before."""


def _samples_as_triplets(samples: FleetSampleSet, operator_weight: int) -> Triplets:
    """The sites' samples as triplets, an operator's label repeated (copies share a pair)."""
    chosen = np.repeat(
        np.arange(len(samples)), training_repeats(samples.label_sources, operator_weight)
    )
    return Triplets(
        samples.tensors[chosen],
        samples.labels[chosen],
        np.zeros(len(chosen)),
        FLEET_FIRST_PAIR + chosen,
    )


def _counts(
    base: Triplets, real: Triplets, samples: FleetSampleSet | None, operator_weight: int
) -> DataCounts:
    labels = Counter(CLASS_NAMES[label] for label in np.concatenate([base.labels, real.labels]))
    by_site = {"simulated": len(base.labels), "ztf": len(real.labels)}
    by_label_source = {"simulation": len(base.labels), "ztf-drb": len(real.labels)}
    fleet = 0
    if samples is not None:
        fleet = len(samples)
        labels.update(CLASS_NAMES[label] for label in samples.labels)
        by_site |= samples.counts("sites")
        by_label_source |= samples.counts("label_sources")
    return DataCounts(
        by_source={"simulated": len(base.labels), "ztf-fink": len(real.labels), "fleet": fleet},
        by_site=by_site,
        by_label={name: labels.get(name, 0) for name in CLASS_NAMES},
        by_label_source=by_label_source,
        operator_weight=operator_weight,
        skipped=samples.skipped if samples is not None else [],
    )


def fit_settings(settings: FleetTrainingSettings) -> RealBogusTrainingSettings:
    """The real/bogus fit's settings (`SKYFLEET_RB_*`) with the fleet run's folders and workers."""
    return RealBogusTrainingSettings.load(
        None,
        data_dir=settings.run_dir / "data",
        run_dir=settings.run_dir,
        workers=settings.workers,
        use_gpu=settings.use_gpu,
        cpus_per_worker=settings.cpus_per_worker,
        ray_address=settings.ray_address,
    )


def assemble_realbogus_data(
    settings: FleetTrainingSettings,
    fit: RealBogusTrainingSettings,
    held_out_objects: list[str],
    tell: RunProgress,
) -> DataCounts:
    """Write the run's triplets (`fit.triplets_path`); what they hold."""
    base_path = settings.realbogus_data_dir / "triplets.npz"
    if not base_path.is_file():
        tell("simulate", 0, 1, f"{settings.realbogus_pairs} simulated pairs")
        simulate_triplets(
            settings.realbogus_pairs, seed=fit.data_seed, size_px=SIMULATED_FRAME_SIDE_PX
        ).save(base_path)
        tell("simulate", 1, 1)
    base = Triplets.load(base_path)
    real = empty_triplets()
    if settings.real_alerts:
        real, _ = fink_triplets(set(held_out_objects), FIRST_REAL_PAIR)
    samples = read_samples(settings, "realbogus")
    parts = [base, real]
    if samples is not None:
        parts.append(_samples_as_triplets(samples, settings.operator_weight))
        tell("samples", 1, 1, f"{len(samples)} fleet samples used, {len(samples.skipped)} skipped")
    Triplets.joined(parts).save(fit.triplets_path)
    return _counts(base, real, samples, settings.operator_weight)


def realbogus_card(
    version: int | None,
    fit: RealBogusTrainingSettings,
    data: DataCounts,
    history: list[EpochMetrics],
) -> str:
    """A short model card: model, data, training."""
    title = f"v{version}" if version is not None else "candidate (not released)"
    best = min(history, key=lambda m: m.val_loss) if history else None
    trained = (
        f"{len(history)} epochs, best validation loss {best.val_loss:.4f} at epoch "
        f"{best.epoch + 1} (validation accuracy {best.val_accuracy:.1%})"
        if best is not None
        else "no epoch run"
    )
    return f"""# Model card: realbogus {title}

## Model
Real/bogus classifier (`training.realbogus.net.RealBogusNet`): new, reference and difference
stamps `[N, 3, 31, 31]` normalised by `imaging.transients.realbogus.normalise_triplets`, logits
over bogus, real.

## Data
By source {data.by_source}; by site {data.by_site}; by label {data.by_label}; by label source
{data.by_label_source}; an operator's label counts {data.operator_weight} times.

## Training
{trained}. Epochs at most {fit.epochs}, batch {fit.batch_size}, learning rate
{fit.learning_rate:g}, hosted copies per real {fit.hosted_fraction:g}, starting from
{fit.initial_model or "fresh weights"}.
"""


class RealBogusRecipe:
    """The real/bogus model in a fleet run."""

    name = "realbogus"
    shipped_dir: Path = SHIPPED_REALBOGUS_MODEL_DIR

    def holdout(self, settings: FleetTrainingSettings, tell: RunProgress) -> RealBogusHoldout:
        """The held-out set's folder read, or built the first time."""
        folder = settings.holdout_folder
        if holdout_exists(folder):
            holdout = load_realbogus_holdout(folder)
        else:
            tell("holdout", 0, 1, "simulating the held-out pairs")
            holdout = build_realbogus_holdout(folder)
        tell("holdout", 1, 1, describe(holdout.info))
        return holdout

    def holdout_info(self, holdout: RealBogusHoldout) -> HoldoutInfo:
        """What the set is."""
        return holdout.info

    def score(self, version_dir: Path, holdout: RealBogusHoldout, label: str) -> ModelScores:
        """A version folder on the held-out triplets."""
        return score_realbogus_model(version_dir, holdout, label)

    def train(
        self, settings: FleetTrainingSettings, holdout: RealBogusHoldout, tell: RunProgress
    ) -> Candidate:
        """Assemble the triplets, fit on Ray Train, write the candidate's folder."""
        fit = fit_settings(settings)
        data = assemble_realbogus_data(settings, fit, holdout.info.object_ids, tell)
        tell("train", 0, fit.epochs, "Ray Train")
        model, history = fit_realbogus_on_ray(fit)
        tell("train", len(history), fit.epochs, _last_epoch(history))
        version_dir = settings.run_dir / CANDIDATE_DIR
        shutil.rmtree(version_dir, ignore_errors=True)  # a run repeated in the same folder
        write_realbogus_model(model, version_dir, version=CANDIDATE_DIR)

        def release(first_version: int, key_seed: str | None) -> Path:
            model_dir = settings.fleet_model_dir
            with reserved_version(model_dir, None, first_version) as version:
                staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir))
                try:
                    write_realbogus_model(model, staging, version=str(version))
                    RealBogusModel.load(staging)  # as a site will load it
                    if key_seed is not None:
                        sign_version(staging, key_seed)
                    return publish_version(staging, model_dir / str(version))
                finally:
                    shutil.rmtree(staging, ignore_errors=True)

        plots = [plot_training_history(history, settings.run_dir / "history.png")]
        return Candidate(
            version_dir,
            data,
            lambda version: realbogus_card(version, fit, data, history),
            release,
            [*plots, settings.run_dir / EPOCH_LOG_FILE],
        )


def _last_epoch(history: list[EpochMetrics]) -> str:
    if not history:
        return "no epoch run"
    last = history[-1]
    return f"val loss {last.val_loss:.3f}, val accuracy {last.val_accuracy:.1%}"

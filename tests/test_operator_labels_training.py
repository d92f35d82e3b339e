"""Operators' labels reach retraining: a candidate the site scored real and an operator called
bogus in the console is collected from the coordinator's store by `skyfleet model samples
--labels-db` as a real/bogus sample labelled bogus by the operator, replaces the site's own
sample of that detection, and enters the training set `operator_weight` times; the run's data
counts name the operator's labels."""

from datetime import timedelta

import numpy as np
from sqlalchemy import select
from typer.testing import CliRunner

from coordinator.ingest import StoreWriter
from coordinator.service import open_store
from coordinator.store.tables import CandidateRow, table_of
from imaging.transients.cutouts import encode_triplet
from imaging.transients.realbogus import CLASS_NAMES
from protos import FrameIdentity, TransientCandidate
from protos.base import utc_now
from skyfleet.cli.main import app
from tests.console_sources import console_client
from tests.coordinators import add_console_user, make_candidate
from training.fleet_config import FleetTrainingSettings
from training.fleet_labels import OperatorLabelRecord, write_operator_samples
from training.fleet_realbogus import assemble_realbogus_data, fit_settings
from training.fleet_samples import (
    RAW_STAMPS,
    SHAPES,
    FleetSample,
    read_fleet_samples,
    write_fleet_sample,
)
from training.realbogus.dataset import Triplets
from training.realbogus.fink import empty_triplets

OPERATOR_WEIGHT = 3


def _candidate(frame: str, ra_deg: float, real_bogus: float, seed: int) -> tuple:
    """A candidate from site 'north' with stamps of its own, and those stamps."""
    stamps = np.random.default_rng(seed).normal(size=SHAPES["realbogus"]).astype(np.float32)
    candidate = make_candidate("north", frame, ra_deg, 10.0, real_bogus=real_bogus)
    return candidate.model_copy(update={"cutouts": encode_triplet(stamps)}), stamps


def _site_sample(candidate: TransientCandidate) -> FleetSample:
    """The site's own sample of the candidate: its confident verdict, real."""
    return FleetSample(
        model="realbogus",
        site_id=candidate.site_id,
        frame=FrameIdentity(
            file_name=candidate.frame_file_name,
            sha256=candidate.frame_sha256,
            width_px=1024,
            height_px=1024,
        ),
        candidate=candidate.message_id,
        tensor_file=f"{candidate.frame_sha256}-site.npy",
        input_version=RAW_STAMPS,
        verdict="real",
        confidence=candidate.real_bogus,
        label="real",
        label_source="site-verdict",
        labelled_at=utc_now() - timedelta(hours=1),
    )


async def _label_in_console(engine, labels: dict[str, str]) -> None:
    """An operator labels each candidate's target in the console."""
    candidates = table_of(CandidateRow)
    with engine.connect() as conn:
        targets = dict(conn.execute(select(candidates.c.message_id, candidates.c.target_id)).all())
    headers = {"Authorization": f"Bearer {add_console_user(engine, 'olga', 'operator')}"}
    async with console_client(engine) as http:
        for message_id, label in labels.items():
            path = f"/api/targets/{targets[message_id]}/label"
            answer = await http.post(path, json={"label": label}, headers=headers)
            assert answer.status_code == 200, answer.text


async def test_a_candidate_the_site_called_real_and_an_operator_bogus_is_trained_as_bogus(
    tmp_path,
):
    database = tmp_path / "coordinator.sqlite3"
    engine = open_store(f"sqlite:///{database}")
    called_real, stamps = _candidate("n-1", 150.0, 0.93, seed=1)
    variable, variable_stamps = _candidate("n-2", 210.0, 0.40, seed=2)
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1.0)
    writer.write(TransientCandidate.KIND, [called_real, variable], utc_now())
    await _label_in_console(
        engine, {called_real.message_id: "bogus", variable.message_id: "variable"}
    )
    engine.dispose()
    samples_dir = tmp_path / "samples"
    write_fleet_sample(samples_dir / "north", _site_sample(called_real), stamps)

    result = CliRunner().invoke(
        app, ["model", "samples", "--to", str(samples_dir), "--labels-db", f"sqlite:///{database}"]
    )
    assert result.exit_code == 0, result.output
    assert "operators' labels: 2 samples {'bogus': 1, 'real': 1}" in result.output

    samples = read_fleet_samples(samples_dir, "realbogus")
    by_key = {key: i for i, key in enumerate(samples.keys)}
    first = by_key[f"{called_real.frame_sha256}@{called_real.message_id}"]
    assert samples.label_sources[first] == "operator"  # not the site's verdict
    assert CLASS_NAMES[samples.labels[first]] == "bogus"
    np.testing.assert_array_equal(samples.tensors[first], stamps)
    second = by_key[f"{variable.frame_sha256}@{variable.message_id}"]
    assert CLASS_NAMES[samples.labels[second]] == "real"  # a variable star is a real source
    np.testing.assert_array_equal(samples.tensors[second], variable_stamps)
    assert len(samples) == 2

    settings = FleetTrainingSettings(
        fleet_model="realbogus",
        samples_dir=samples_dir,
        realbogus_data_dir=tmp_path / "base",
        real_alerts=False,
        operator_weight=OPERATOR_WEIGHT,
        run_dir=tmp_path / "run",
    )
    empty_triplets().save(settings.realbogus_data_dir / "triplets.npz")
    fit = fit_settings(settings)
    data = assemble_realbogus_data(settings, fit, [], lambda *_: None)
    assert data.operator_labels == 2
    assert data.by_label_source["operator"] == 2
    trained = Triplets.load(fit.triplets_path)
    copies = [i for i, t in enumerate(trained.stamps) if np.array_equal(t, stamps)]
    assert len(copies) == OPERATOR_WEIGHT
    assert {CLASS_NAMES[trained.labels[i]] for i in copies} == {"bogus"}


def test_a_label_whose_stamps_cannot_be_used_is_counted_with_why(tmp_path):
    record = OperatorLabelRecord(
        message_id="transient-candidate:" + "0" * 32,
        label="real",
        user_name="olga",
        at=utc_now(),
        site_id="north",
        frame_sha256="a" * 64,
        frame_file_name="n-1.fits",
        real_bogus=0.7,
    )
    written = write_operator_samples(tmp_path, [(record, np.zeros((3, 15, 15)))])
    assert written.written == 0
    assert [s.reason for s in written.unusable] == [
        "stamps of shape [3, 15, 15], expected [3, 31, 31]"
    ]
    assert not any(tmp_path.iterdir())


def test_a_mistyped_labels_database_is_named_and_nothing_is_created(tmp_path):
    missing = tmp_path / "var" / "coordinatr.sqlite3"
    samples_dir = tmp_path / "samples"
    result = CliRunner().invoke(
        app, ["model", "samples", "--to", str(samples_dir), "--labels-db", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 1
    assert f"no coordinator database at {missing}" in " ".join(result.output.split())
    assert not missing.exists() and not missing.parent.exists()
    assert not samples_dir.exists()

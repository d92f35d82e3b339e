"""Real/bogus on real ZTF alerts: `skyfleet realbogus score`, the split by object, packets without
ZTF's `drb`, and the shipped model's AUC on the real alerts it was never trained on."""

import json
import shutil
from pathlib import Path

import fastavro
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from imaging.transients.config import TransientSearchSettings
from imaging.transients.realbogus import RealBogusModel
from skyfleet.cli import app
from training.realbogus.evaluate import read_ztf_alerts
from training.realbogus.fink import fink_triplets
from training.realbogus.real_metrics import evaluate_on_real_alerts
from training.realbogus.real_split import (
    load_real_alerts,
    real_training_alerts,
    real_validation_alerts,
    split_by_object,
)

FIELDS = {"candid", "objectId", "score", "drb", "threshold", "model_version"}


@pytest.fixture
def kowalski(real_data: Path) -> Path:
    return real_data / "ztf-alerts-kowalski"


@pytest.fixture
def fink(real_data: Path) -> Path:
    return real_data / "ztf-alerts-fink"


def _score(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, ["realbogus", "score", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def _without_drb(source: Path, target: Path) -> Path:
    """A copy of one Avro packet whose candidate carries no drb (as packets before 2019 do)."""
    with source.open("rb") as stream:
        reader = fastavro.reader(stream)
        schema, record = reader.writer_schema, next(reader)
    record["candidate"]["drb"] = None
    with target.open("wb") as stream:
        fastavro.writer(stream, schema, [record])
    return target


def test_score_prints_one_json_line_per_alert_of_avro_folders_and_parquet_files(kowalski, fink):
    parquet = fink / "alerts.parquet"
    code, lines, _ = _score("--json", str(kowalski), str(parquet))
    assert code == 0
    rows = pq.read_table(parquet, columns=["objectId"]).num_rows
    assert len(lines) == 36 + rows
    shipped = RealBogusModel.load().manifest.version
    for line in lines:
        assert line.keys() >= FIELDS
        assert 0.0 <= line["score"] <= 1.0 and line["drb"] is not None
        assert line["threshold"] == TransientSearchSettings().real_bogus_threshold
        assert line["model_version"] == shipped
        assert line["objectId"].startswith("ZTF")
    avro_candids = {int(p.stem) for p in kowalski.rglob("*.avro")}
    assert avro_candids <= {line["candid"] for line in lines}


def test_a_corrupt_file_is_named_in_one_error_line_and_the_others_are_scored(kowalski, tmp_path):
    good = sorted(kowalski.rglob("*.avro"))[:2]
    for path in good:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01 not really avro")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 truncated")
    code, lines, errors = _score("--json", str(tmp_path))
    assert code == 1
    assert sorted(line["candid"] for line in lines) == sorted(int(p.stem) for p in good)
    error_lines = [line for line in errors.splitlines() if line.strip()]
    assert len(error_lines) == 2
    assert any("broken.avro" in line for line in error_lines)
    assert any("broken.parquet" in line for line in error_lines)


def test_a_file_that_is_not_an_alert_and_an_empty_folder_are_refused(tmp_path, kowalski):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    good = next(kowalski.rglob("*.avro"))
    code, lines, errors = _score("--json", str(notes), str(empty), str(good))
    assert code == 1
    assert "notes.txt: not an alert file" in errors
    assert "empty: no .avro or .parquet files" in errors
    assert [line["candid"] for line in lines] == [int(good.stem)]
    result = CliRunner().invoke(app, ["realbogus", "score", str(kowalski)])  # table, summary
    assert result.exit_code == 0
    assert "36 alert(s) from 36 file(s)" in result.stdout


def test_a_packet_without_drb_is_scored_with_a_null_drb_and_skipped_from_labelled_sets(
    kowalski, tmp_path
):
    first, second = sorted(kowalski.rglob("*.avro"))[:2]
    _without_drb(first, tmp_path / first.name)
    shutil.copy(second, tmp_path / second.name)
    alerts = read_ztf_alerts(tmp_path)
    assert alerts.skipped_without_drb == 1 and len(alerts.drb) == 1 == len(alerts.stamps)
    assert load_real_alerts(tmp_path).skipped_without_drb == 1
    code, lines, _ = _score("--json", str(tmp_path / first.name))
    assert code == 0 and lines[0]["drb"] is None and lines[0]["candid"] == int(first.stem)


def test_no_object_is_both_trained_on_and_held_out(fink, kowalski):
    alerts = load_real_alerts(fink)
    train, validation = split_by_object(alerts)
    assert len(train.drb) + len(validation.drb) == len(alerts.drb) == 264
    assert not set(train.objects) & set(validation.objects)
    held_out = {name for s in real_validation_alerts(fink, kowalski).values() for name in s.objects}
    assert not set(real_training_alerts(fink, kowalski).objects) & held_out
    _, trained_objects = fink_triplets(set(), 0, fink)
    assert trained_objects and not set(trained_objects) & held_out
    # the split follows the object's name alone: a subset of the alerts splits the same way
    again, _ = split_by_object(alerts.select(np.arange(len(alerts.drb)) % 2 == 0))
    assert set(again.objects) <= set(train.objects)


def test_shipped_model_ranks_held_out_real_alerts_better_than_chance(fink, kowalski):
    """The floor: the lower end of the 95 % object-bootstrap interval of the AUC against `drb`
    is above 0.5, so the model ranks real above bogus better than chance with 95 % confidence on
    real alerts it was never trained on. With ~16 negatives among ~140 alerts this is what the
    data can show; the goal of issue 21 (0.93) is not met (version 5: 0.67 [0.57, 0.78],
    docs/transients.md, *Real alerts*). A model that ignores its stamps, or one the fading
    alerts' flip had turned upside down, falls to or below 0.5 and fails."""
    threshold = TransientSearchSettings().real_bogus_threshold
    sets = real_validation_alerts(fink, kowalski)
    result = evaluate_on_real_alerts(RealBogusModel.load(), sets, threshold)["all held-out"]
    assert result.negatives >= 10 and result.alerts > 100
    assert result.roc_auc_low is not None and result.roc_auc_low > 0.5
    assert result.roc_auc is not None and result.roc_auc_low < result.roc_auc

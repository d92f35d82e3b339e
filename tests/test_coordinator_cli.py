"""`skyfleet status` prints the fleet summary the console shows, from the coordinator's store."""

import json

from typer.testing import CliRunner

from coordinator.ingest import StoreWriter
from coordinator.service import open_store
from protos import QualityLabel
from protos.base import utc_now
from skyfleet.cli import app
from tests.coordinators import make_config, make_heartbeat, make_score

runner = CliRunner()


def seeded_database(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    engine = open_store(url)
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    writer.write("site-config", [make_config("teide", 28.3, -16.5)], utc_now())
    writer.write("site-heartbeat", [make_heartbeat("teide"), make_heartbeat("paranal")], utc_now())
    scores = [make_score("teide", i, QualityLabel.BAD) for i in range(3)]
    scores += [make_score("paranal", i, QualityLabel.GOOD) for i in range(5)]
    writer.write("frame-score", scores, utc_now())
    engine.dispose()
    return url


def test_status_prints_every_site_with_its_health(tmp_path):
    url = seeded_database(tmp_path)
    result = runner.invoke(app, ["status", "--database", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if "│ " in line[:3]}
    assert "weather" in lines["teide"] and "100%" in lines["teide"]
    assert "online" in lines["paranal"]
    assert "alert teide: 100% of the last 3 frames are bad" in result.output


def test_status_says_which_parts_of_a_site_agent_were_restarted(tmp_path):
    url = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    engine = open_store(url)
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    beat = make_heartbeat("teide", restarts={"nats-server": 2, "worker": 1}, failed_frames=3)
    writer.write("site-heartbeat", [beat], utc_now())
    engine.dispose()
    result = runner.invoke(app, ["status", "--database", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "restarted since the agent started: nats-server=2, worker=1" in result.output
    assert "3 frame(s) failed and are being retried" in result.output


def test_status_json_is_the_fleet_summary(tmp_path):
    url = seeded_database(tmp_path)
    result = runner.invoke(app, ["status", "--database", url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {s["site_id"]: s["frames"] for s in summary["sites"]} == {"paranal": 5, "teide": 3}

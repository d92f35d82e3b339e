"""Operators label a frame's quality in the console: only operators and admins may (a browser
needs its CSRF token), each label is in the action log with who gave it, the latest counts and
shows on the site page's frame list; and `skyfleet model samples --labels-db` applies it to the
site's sample of that frame, so a frame the site called good and an operator bad trains as bad,
`operator_weight` times. A frame label with no site sample is reported."""

from datetime import timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from coordinator.ingest import StoreWriter
from coordinator.service import open_store
from coordinator.store.action_log import recent_actions
from imaging.preprocess import INPUT_SHAPE, PREPROCESS_VERSION
from protos import FrameScore
from protos.base import utc_now
from protos.frames import QualityLabel
from skyfleet.cli.main import app
from tests.console_sources import console_client
from tests.coordinators import add_console_user, make_score
from training.fleet_samples import (
    FleetSample,
    read_fleet_samples,
    training_repeats,
    write_fleet_sample,
)
from training.quality_net import CLASS_NAMES

ELSEWHERE = "192.0.2.10"
"""A browser on another machine (TEST-NET-1): no loopback reads."""
OPERATOR_WEIGHT = 3
SCORES = [make_score("north", i, QualityLabel.GOOD) for i in range(4)]
"""Frames site 'north' called good."""


@pytest.fixture
def store(tmp_path):
    """A coordinator store holding `SCORES`, and its database URL."""
    url = f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
    engine = open_store(url)
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1.0)
    writer.write(FrameScore.KIND, SCORES, utc_now())
    yield engine, url
    engine.dispose()


def label_path(score: FrameScore) -> str:
    return f"/api/frames/{score.message_id}/label"


async def test_only_operators_label_frames_with_their_csrf_token_and_the_log_names_them(store):
    engine, _ = store
    viewer, operator = (
        add_console_user(engine, "vera", "viewer"),
        add_console_user(engine, "olga", "operator"),
    )
    admin = {"Authorization": f"Bearer {add_console_user(engine, 'ada', 'admin')}"}
    frame = SCORES[0]
    async with console_client(engine, host=ELSEWHERE) as http:
        me = (await http.post("/api/login", json={"name": "vera", "token": viewer})).json()
        refused = await http.post(
            label_path(frame), json={"label": "bad"}, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        me = (await http.post("/api/login", json={"name": "olga", "token": operator})).json()
        no_csrf = await http.post(label_path(frame), json={"label": "bad"})
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        unknown_label = await http.post(label_path(frame), json={"label": "awful"}, headers=csrf)
        unknown_frame = await http.post(
            f"/api/frames/frame-score:{'0' * 32}/label", json={"label": "bad"}, headers=csrf
        )
        medium = await http.post(label_path(frame), json={"label": "medium"}, headers=csrf)
        bad = await http.post(
            label_path(frame), json={"label": "bad", "note": "trailed stars"}, headers=csrf
        )
        labels = await http.get(f"/api/frames/{frame.message_id}/labels")
        page = await http.get("/api/sites/north/frames")
        log = await http.get("/api/actions", headers=admin)

    assert refused.status_code == 403
    assert refused.json()["detail"] == "vera is a viewer: actions need the operator or admin role"
    assert no_csrf.status_code == 403 and "X-CSRF-Token" in no_csrf.json()["detail"]
    assert unknown_label.status_code == 422
    assert "'good', 'medium' or 'bad'" in unknown_label.text
    assert unknown_frame.status_code == 404
    assert unknown_frame.json()["detail"].startswith("no frame 'frame-score:000")
    assert medium.status_code == bad.status_code == 200
    assert bad.json()["label"] == "bad" and bad.json()["user_name"] == "olga"

    answer = labels.json()
    assert answer["frame_sha256"] == frame.frame.sha256
    assert answer["current"]["label"] == "bad"  # the latest counts
    assert [h["label"] for h in answer["history"]] == ["bad", "medium"]
    shown = {f["message_id"]: f["operator_label"] for f in page.json()["frames"]}
    assert shown[frame.message_id]["label"] == "bad"
    assert shown[frame.message_id]["note"] == "trailed stars"
    assert shown[SCORES[3].message_id] is None

    entries = [
        (e["user_name"], e["via"], e["action"], e["target"], e["detail"], e["outcome"])
        for e in log.json()
        if e["user_name"] == "olga"
    ]
    target = f"frame:{frame.message_id}"
    assert entries == [
        ("olga", "session", "frame.label", target, "label=bad", "done"),
        ("olga", "session", "frame.label", target, "label=medium", "done"),
        (
            "olga",
            "session",
            "frame.label",
            f"frame:frame-score:{'0' * 32}",
            "label=bad",
            "not-found",
        ),
    ]
    with engine.connect() as conn:
        assert not [e for e in recent_actions(conn) if e.user_name == "vera"]


def site_sample(score: FrameScore) -> FleetSample:
    """The site's own sample of a scored frame: its verdict, as `site_agent.samples` sends it."""
    return FleetSample(
        model="quality",
        site_id=score.site_id,
        frame=score.frame,
        tensor_file=f"{score.frame.sha256}.npy",
        input_version=PREPROCESS_VERSION,
        metrics=score.metrics,
        verdict=score.label.value,
        confidence=score.confidence,
        scored_by=score.model,
        label=score.label.value,
        label_source="site-verdict",
        labelled_at=utc_now() - timedelta(hours=1),
    )


async def test_a_frame_the_site_called_good_and_an_operator_bad_trains_as_bad(store, tmp_path):
    engine, url = store
    token = add_console_user(engine, "otto", "operator")
    called_good, unsampled = SCORES[1], SCORES[2]
    async with console_client(engine) as http:
        for frame in (called_good, unsampled):
            answer = await http.post(
                label_path(frame),
                json={"label": "bad"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
    samples_dir = tmp_path / "samples"
    tensor = np.random.default_rng(1).normal(size=INPUT_SHAPE).astype(np.float32)
    write_fleet_sample(samples_dir / "north", site_sample(called_good), tensor)

    result = CliRunner().invoke(
        app, ["model", "samples", "--to", str(samples_dir), "--labels-db", url]
    )
    assert result.exit_code == 0, result.output
    assert "operators' frame labels: 1 quality samples {'bad': 1}" in result.output
    assert "1 frame labels have no site sample" in result.output
    assert unsampled.frame.sha256[:12] in result.output

    samples = read_fleet_samples(samples_dir, "quality")
    assert samples.keys == [called_good.frame.sha256]  # one sample per frame: the operator's
    assert samples.label_sources == ["operator"]
    assert CLASS_NAMES[samples.labels[0]] == "bad"
    np.testing.assert_array_equal(samples.tensors[0], tensor)
    assert training_repeats(samples.label_sources, OPERATOR_WEIGHT).tolist() == [OPERATOR_WEIGHT]

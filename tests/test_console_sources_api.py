"""The candidate, source and follow-up API of the ops console on a seeded store: scanning with
filters and paging, an operator's verdict becoming a source and a training label, the source's
light curve, position, comments and follow-ups, follow-up requests, re-prioritising and
cancelling (each leaving its command for the dispatcher), and bad input refused cleanly."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from coordinator.service import open_store
from coordinator.store.tables import (
    ActionLogRow,
    CandidateLabel,
    FollowUp,
    FollowUpCommand,
    Target,
    TargetComment,
    table_of,
)
from protos.base import utc_now
from tests.console_sources import UPPER_LIMIT_MAG, console_client, seed_store
from tests.coordinators import add_console_user

WRITTEN = (ActionLogRow, CandidateLabel, FollowUp, FollowUpCommand, Target, TargetComment)


@pytest.fixture
def store(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'sources.sqlite3'}")
    source_id = seed_store(engine)
    yield engine, source_id
    engine.dispose()


@pytest.fixture(scope="module")
def untouched_store(tmp_path_factory):
    """One seeded store, with an operator's token, for the bad requests (which change nothing)."""
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('bad') / 'sources.sqlite3'}")
    seed_store(engine)
    yield engine, bearer(engine, "olga", "operator")
    engine.dispose()


def bearer(engine, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_console_user(engine, name, role)}"}


def row_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            model.__tablename__: conn.execute(
                select(func.count()).select_from(table_of(model))
            ).scalar_one()
            for model in WRITTEN
        }


async def test_candidates_are_newest_first_with_cutouts_nearby_sources_and_filters(store):
    engine, source_id = store
    async with console_client(engine) as http:
        everything = (await http.get("/api/candidates")).json()
        south = (await http.get("/api/candidates", params={"site_id": "south"})).json()
        likely = (await http.get("/api/candidates", params={"min_real_bogus": 0.5})).json()
        second = (await http.get("/api/candidates", params={"limit": 2, "offset": 2})).json()
        recent = (
            await http.get(
                "/api/candidates", params={"since": (utc_now() - timedelta(hours=2.5)).isoformat()}
            )
        ).json()
        stamps = (await http.get(f"/api/cutouts/{everything['items'][0]['message_id']}")).json()
    newest = everything["items"][0]
    times = [c["observed_at"] for c in everything["items"]]
    assert everything["total"] == 4 and times == sorted(times, reverse=True)
    assert (newest["site_id"], newest["mag"], newest["filter"]) == ("south", 19.1, "r")
    assert [n["target_id"] for n in newest["nearby"]] == [source_id]
    assert newest["nearby"][0]["separation_arcsec"] == pytest.approx(20.0, abs=0.1)
    assert south["total"] == 1
    assert sorted(c["real_bogus"] for c in likely["items"]) == pytest.approx([0.5, 0.7, 0.95])
    assert second["total"] == 4 and len(second["items"]) == 2
    assert second["items"][0]["message_id"] == everything["items"][2]["message_id"]
    assert recent["total"] == 2
    assert {len(stamps[kind]) for kind in ("new", "reference", "difference")} == {21}


async def test_a_saved_candidate_becomes_a_source_and_its_label_is_there_for_training(store):
    engine, _ = store
    olga, vera = bearer(engine, "olga", "operator"), bearer(engine, "vera", "viewer")
    before = utc_now()
    async with console_client(engine, host="192.0.2.10") as http:
        first, second = (await http.get("/api/candidates", headers=vera)).json()["items"][:2]
        path = f"/api/targets/{first['target_id']}/label"
        refused = await http.post(path, json={"label": "real"}, headers=vera)
        saved = await http.post(path, json={"label": "real"}, headers=olga)
        path = f"/api/targets/{second['target_id']}/label"
        asteroid = await http.post(path, json={"label": "asteroid"}, headers=olga)
        left = (await http.get("/api/candidates", headers=vera)).json()
        source = (await http.get(f"/api/sources/{first['target_id']}", headers=vera)).json()
        moving = (await http.get(f"/api/sources/{second['target_id']}", headers=vera)).json()
        labels = (
            await http.get("/api/labels", params={"since": before.isoformat()}, headers=vera)
        ).json()["items"]
        stamps = await http.get(labels[0]["cutouts_url"], headers=vera)
    assert refused.status_code == 403 and saved.status_code == 200 and asteroid.status_code == 200
    assert left["total"] == 2
    assert (source["status"], source["promoted_by"]) == ("source", "user:olga")
    assert source["detections"][0]["label"] == "real"
    assert (moving["status"], moving["mark"]) == ("rejected", "asteroid")
    assert [(label["message_id"], label["label"]) for label in labels] == [
        (first["message_id"], "real"),
        (second["message_id"], "asteroid"),
    ]
    assert labels[0]["user_name"] == "olga" and labels[0]["site_id"] == first["site_id"]
    assert stamps.status_code == 200 and len(stamps.json()["difference"]) == 21


async def test_source_shows_every_detection_its_position_error_and_followup_history(store):
    engine, source_id = store
    olga = bearer(engine, "olga", "operator")
    async with console_client(engine) as http:
        added = await http.post(
            f"/api/sources/{source_id}/comments", json={"text": "  rising in r  "}, headers=olga
        )
        source = (await http.get(f"/api/sources/{source_id}")).json()
    assert added.status_code == 200
    assert [(d["site_id"], d["filter"], d["mag"]) for d in source["detections"]] == [
        ("north", "r", 18.2),
        ("south", "g", 18.6),
        ("north", "r", 17.9),
        ("south", "g", 18.3),
    ]
    assert source["sites"] == ["north", "south"] and source["status"] == "source"
    assert 0.05 < source["position_error_arcsec"] < 0.5  # four S/N 50 detections within 0.4"
    assert [(u["site_id"], u["filter"], u["mag"]) for u in source["upper_limits"]] == [
        ("north", "r", UPPER_LIMIT_MAG)
    ]  # the frame that covered it without a detection; not one that found it, or elsewhere
    assert [(c["user_name"], c["text"]) for c in source["comments"]] == [("olga", "rising in r")]
    (followup,) = source["followups"]
    assert [(h["state"], h["exposures_done"]) for h in followup["history"]] == [
        ("accepted", 0),
        ("observing", 1),
        ("observing", 2),
        ("done", 2),
    ]
    assert followup["explanation"]["deciding"]["constraint"] == "expected_quality"
    assert (followup["exposures_done"], followup["exposures_total"]) == (2, 2)


async def test_the_queue_filters_by_state_site_and_target_and_counts_them_all(store):
    engine, source_id = store
    async with console_client(engine) as http:
        done = await http.get("/api/followups", params={"state": ["done", "failed"]})
        open_ = await http.get("/api/followups", params={"state": ["sent", "observing"]})
        north = await http.get("/api/followups", params={"site_id": "north"})
        mine = await http.get("/api/followups", params={"target_id": source_id})
    assert [f["request_id"] for f in done.json()] == [f"t{source_id}-1"]
    assert done.headers["X-Total-Count"] == "1"
    assert open_.json() == [] and north.json() == []
    assert mine.json()[0]["target_name"].startswith("SF J")


async def test_an_operator_requests_reprioritises_and_cancels_a_followup_for_the_site(store):
    engine, source_id = store
    olga = bearer(engine, "olga", "operator")
    ask = {"filter": "g", "exptime_s": 120, "count": 4, "priority": 4}
    async with console_client(engine) as http:
        made = await http.post(f"/api/sources/{source_id}/followups", json=ask, headers=olga)
        request_id = made.json()["request_id"]
        urgent = await http.post(
            f"/api/followups/{request_id}/priority", json={"priority": 1}, headers=olga
        )
        cancelled = await http.post(f"/api/followups/{request_id}/cancel", headers=olga)
        again = await http.post(f"/api/followups/{request_id}/cancel", headers=olga)
        shown = (await http.get("/api/followups", params={"target_id": source_id})).json()
    assert made.status_code == 200 and urgent.status_code == 200
    assert cancelled.json()["state"] == "cancelling"
    assert again.status_code == 409 and "not active" in again.json()["detail"]
    newest = shown[0]
    assert (newest["request_id"], newest["priority"], newest["plan"]["count"]) == (
        request_id,
        1,
        4,
    )
    with engine.connect() as conn:
        commands = table_of(FollowUpCommand)
        kinds = conn.execute(
            select(commands.c.kind)
            .where(commands.c.request_id == request_id)
            .order_by(commands.c.created_at, commands.c.kind)
        ).scalars()
        assert set(kinds) == {"followup-request", "followup-priority", "followup-cancel"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"),
    [
        ("get", "/api/sources/999999", None, 404, "no source 999999"),
        ("get", "/api/sources/abc", None, 422, "target_id"),
        ("get", "/api/candidates?limit=1000000", None, 422, "limit"),
        ("get", "/api/candidates?min_real_bogus=2", None, 422, "min_real_bogus"),
        ("get", "/api/candidates?since=yesterday", None, 422, "since"),
        ("get", "/api/candidates?since=2026-12-01T00:00:00", None, 422, "timezone"),
        ("get", "/api/followups?state=lost", None, 422, "state"),
        ("get", "/api/followups?limit=99999", None, 422, "limit"),
        ("get", "/api/labels", None, 422, "since"),
        ("get", "/api/cutouts/..%2F..%2F..%2Fetc%2Fpasswd", None, 422, "message_id"),
        ("get", "/api/cutouts/transient-candidate:" + "0" * 32, None, 404, "no detection"),
        ("post", "/api/targets/999999/label", {"label": "real"}, 404, "no target 999999"),
        ("post", "/api/targets/1/label", {"label": "alien"}, 422, "label"),
        ("post", "/api/sources/1/comments", {"text": "   "}, 422, "text"),
        ("post", "/api/sources/999999/comments", {"text": "hi"}, 404, "no source"),
        ("post", "/api/sources/1/followups", {"filter": "r", "exptime_s": 0, "count": 1}, 422,
         "exptime_s"),
        ("post", "/api/sources/999999/followups", {"filter": "r", "exptime_s": 9, "count": 1},
         404, "no target 999999"),
        ("post", "/api/followups/nothing/priority", {"priority": 11}, 422, "priority"),
        ("post", "/api/followups/nothing/cancel", None, 404, "no follow-up nothing"),
    ],
)  # fmt: skip
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    untouched_store, method, path, body, status, names
):
    engine, olga = untouched_store
    before = row_counts(engine)
    async with console_client(engine) as http:
        answer = await http.request(method.upper(), path, json=body, headers=olga)
    assert answer.status_code == status
    assert names in answer.text and "Traceback" not in answer.text
    after = row_counts(engine)
    logged = after.pop("action_log") - before.pop("action_log")
    assert after == before
    assert logged == (1 if status == 404 and method == "post" else 0)  # who tried what, on what

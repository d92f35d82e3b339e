"""The label feed training pulls (`GET /api/labels`): an operator's verdict on a target labels
all its detections at one instant, and more of them than a page holds still come out once
each, in order, page by page with each answer's `next` cursor; the last cursor picks up the
labels given later, and a cursor the feed never gave is refused (SQLite and PostgreSQL)."""

import pytest
from sqlalchemy import insert

from coordinator.store.engine import open_engine
from coordinator.store.migrations import upgrade_to_head
from coordinator.store.tables import CandidateRow, Target, table_of
from protos.base import utc_now
from tests.console_sources import console_client
from tests.coordinators import add_console_user, make_candidate

DETECTIONS = 25
"""Detections of the first target: two and a half pages of `PAGE`."""
PAGE = 10


@pytest.fixture
def store(database_url):
    """Two candidate targets, the first with `DETECTIONS` detections, the second with two."""
    engine = open_engine(database_url)
    upgrade_to_head(engine)
    now = utc_now()
    with engine.begin() as conn:
        for target_id, count in ((1, DETECTIONS), (2, 2)):
            conn.execute(insert(table_of(Target)).values(
                target_id=target_id, name=f"T{target_id}", ra_deg=10.0 * target_id,
                dec_deg=5.0, first_seen=now, last_seen=now, n_detections=count, n_sites=1,
                n_frames=count, confidence=0.5,
            ))  # fmt: skip
            detections = [
                make_candidate("north", f"t{target_id}-{i}", 10.0 * target_id, 5.0, when=now)
                for i in range(count)
            ]
            conn.execute(insert(table_of(CandidateRow)), [
                d.model_dump(include=set(CandidateRow.__table__.columns.keys()), mode="json")
                | {"observed_at": now, "target_id": target_id}
                for d in detections
            ])  # fmt: skip
    operator = {"Authorization": f"Bearer {add_console_user(engine, 'olga', 'operator')}"}
    yield engine, operator
    engine.dispose()


async def test_labels_given_at_one_instant_come_out_once_each_across_pages(store):
    engine, operator = store
    start = utc_now().isoformat()
    async with console_client(engine) as http:
        saved = await http.post("/api/targets/1/label", json={"label": "real"}, headers=operator)
        pages = [(await http.get("/api/labels", params={"since": start, "limit": PAGE})).json()]
        for _ in range(DETECTIONS // PAGE + 1):  # bounded: a feed that repeats itself fails
            if len(pages[-1]["items"]) < PAGE:
                break
            after = {"after": pages[-1]["next"], "limit": PAGE}
            pages.append((await http.get("/api/labels", params=after)).json())
        caught_up = pages[-1]["next"]
        await http.post("/api/targets/2/label", json={"label": "bogus"}, headers=operator)
        later = (await http.get("/api/labels", params={"after": caught_up})).json()
        forged = await http.get("/api/labels", params={"after": "not-a-cursor"})
    assert saved.status_code == 200
    assert [len(page["items"]) for page in pages] == [PAGE, PAGE, DETECTIONS - 2 * PAGE]
    labels = [item for page in pages for item in page["items"]]
    assert len({label["at"] for label in labels}) == 1  # one verdict, one instant
    ids = [label["message_id"] for label in labels]
    assert len(set(ids)) == DETECTIONS and ids == sorted(ids)
    assert [(label["label"], label["user_name"]) for label in later["items"]] == [
        ("bogus", "olga"),
        ("bogus", "olga"),
    ]
    assert not set(ids) & {label["message_id"] for label in later["items"]}
    assert forged.status_code == 422 and "after" in forged.text

"""A follow-up's life at the coordinator: site reports move it forward with its exposures (late
and repeated ones change nothing), an operator's cancel reaches the site on the real bus and
closes when the site answers, re-prioritising and requesting go to the site as commands, and a
command stored while the coordinator was down is sent once it starts."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from coordinator.ingest import StoreWriter
from coordinator.scheduling import outbox
from coordinator.scheduling.dispatcher import plan_round
from coordinator.service import Coordinator, open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store import actions
from coordinator.store.tables import (
    FollowUp,
    FollowUpStatusRow,
    FrameScoreRow,
    HeartbeatRow,
    Site,
    Target,
)
from fleetbus.client import decode, publish
from protos import (
    ExposurePlan,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpState,
    QualityLabel,
    SiteConditions,
)
from protos.streams import COMMAND_STREAM
from tests.coordinators import coordinator_settings, eventually, make_heartbeat, make_score
from tests.followups import report, store_source_overhead

pytestmark = pytest.mark.usefixtures("offline_iers")

SETTINGS = CoordinatorSettings(min_moon_separation_deg=0.0, heartbeat_stale_s=3600.0)


@pytest.fixture
def engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'followups.sqlite3'}")
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine):
    return StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)


@pytest.fixture
def planned(engine) -> FollowUpRequest:
    """A request planned at site `a` for a source overhead."""
    now = datetime.now(UTC)
    store_source_overhead(engine, ["a"], now)
    (request,) = plan_round(engine, SETTINGS, now)
    return request


def followup(engine, request_id: str):
    with engine.connect() as conn:
        return conn.execute(select(FollowUp).where(FollowUp.request_id == request_id)).one()


def test_progress_reports_count_exposures_and_late_or_repeated_ones_change_nothing(
    engine, writer, planned
):
    rid, t = planned.request_id, datetime.now(UTC)
    states = FollowUpState

    def send(*reports):
        writer.write("followup-status", list(reports), t)
        row = followup(engine, rid)
        return row.state, row.exposures_done, row.exposures_total

    assert send(report("a", rid, states.ACCEPTED, t)) == ("accepted", 0, 3)
    one = report("a", rid, states.OBSERVING, t + timedelta(seconds=1), done=1)
    two = report("a", rid, states.OBSERVING, t + timedelta(seconds=2), done=2)
    assert send(two, one) == ("observing", 2, 3)  # one batch, out of order
    assert send(one) == ("observing", 2, 3)  # late
    assert send(two) == ("observing", 2, 3)  # repeated
    assert send(report("a", rid, states.ACCEPTED, t)) == ("observing", 2, 3)
    assert send(report("a", rid, states.DONE, t + timedelta(seconds=3), done=3)) == ("done", 3, 3)
    assert send(report("a", rid, states.CANCELLED, t, reason="late")) == ("done", 3, 3)
    with engine.connect() as conn:
        history = conn.execute(
            select(FollowUpStatusRow.state, FollowUpStatusRow.exposures_done)
            .where(FollowUpStatusRow.request_id == rid)
            .order_by(FollowUpStatusRow.reported_at, FollowUpStatusRow.exposures_done)
        ).all()
    assert [tuple(h) for h in history] == [
        ("accepted", 0),
        ("cancelled", 0),
        ("observing", 1),
        ("observing", 2),
        ("done", 3),
    ]


def test_a_cancel_waits_for_the_sites_answer_and_a_finished_request_stays_finished(
    engine, writer, planned
):
    rid, now = planned.request_id, datetime.now(UTC)
    with engine.begin() as conn:
        assert actions.cancel_followup(conn, rid, now)
        assert not actions.cancel_followup(conn, rid, now)  # already cancelling
        assert not actions.cancel_followup(conn, "t999-1", now)
    assert followup(engine, rid).state == "cancelling"
    (cancel,) = [c for c in outbox.unsent_commands(engine) if isinstance(c, FollowUpCancel)]
    assert (cancel.site_id, cancel.request_id, cancel.reason) == ("a", rid, "cancelled by operator")
    writer.write("followup-status", [report("a", rid, FollowUpState.OBSERVING, now, done=1)], now)
    assert followup(engine, rid).state == "cancelling"
    writer.write("followup-status", [report("a", rid, FollowUpState.DONE, now, done=3)], now)
    assert (followup(engine, rid).state, followup(engine, rid).exposures_done) == ("done", 3)


def test_a_cancel_the_site_never_answers_is_closed_after_the_ack_timeout(engine, planned):
    rid, now = planned.request_id, datetime.now(UTC)
    with engine.begin() as conn:
        assert actions.cancel_followup(conn, rid, now)
    timeout = timedelta(seconds=SETTINGS.followup_ack_timeout_s)
    plan_round(engine, SETTINGS, now + timeout / 2)
    assert followup(engine, rid).state == "cancelling"
    plan_round(engine, SETTINGS, now + timeout * 1.01)
    row = followup(engine, rid)
    assert (row.state, row.reason) == ("cancelled", "cancelled; the site did not confirm in time")


def test_reprioritising_sends_each_change_to_the_site(engine, writer, planned):
    rid, now = planned.request_id, datetime.now(UTC)
    with engine.begin() as conn:
        assert actions.reprioritise_followup(conn, rid, 2, now)
        assert actions.reprioritise_followup(conn, rid, 2, now)
    changes = [c for c in outbox.unsent_commands(engine) if isinstance(c, FollowUpReprioritise)]
    assert [(c.site_id, c.request_id, c.priority) for c in changes] == [("a", rid, 2)] * 2
    assert changes[0].message_id != changes[1].message_id  # a second change is a new command
    assert followup(engine, rid).priority == 2
    writer.write("followup-status", [report("a", rid, FollowUpState.FAILED, now, reason="x")], now)
    with engine.begin() as conn:
        assert not actions.reprioritise_followup(conn, rid, 1, now)


def test_an_operator_request_is_planned_explained_and_refused_clearly(engine):
    now = datetime.now(UTC)
    store_source_overhead(engine, ["a", "b"], now)
    plan = ExposurePlan(filter="g", exptime_s=60.0, count=5)
    with engine.begin() as conn:
        target_id = conn.execute(select(Target.target_id)).scalar_one()
        rid = actions.request_followup(
            conn, target_id, plan, 2, "user:ada", now, site_id="b", settings=SETTINGS
        )
        with pytest.raises(actions.UnknownTarget, match=r"^no target 999$"):
            actions.request_followup(conn, 999, plan, 2, "user:ada", now, settings=SETTINGS)
        with pytest.raises(actions.UnknownSite, match="no site 'x'"):
            actions.request_followup(conn, target_id, plan, 2, "ada", now, site_id="x")
    assert rid is not None
    row = followup(engine, rid)
    assert (row.site_id, row.priority, row.exposures_total, row.reason) == (
        "b",
        2,
        5,
        "requested by user:ada",
    )
    assert row.plan == plan.model_dump(mode="json")
    assert row.explanation["site_id"] == "b"
    (request,) = outbox.unsent_commands(engine)
    assert isinstance(request, FollowUpRequest) and request.plan == plan


def test_heartbeat_conditions_and_frame_thumbnails_are_stored(engine, writer):
    now = datetime.now(UTC)
    conditions = SiteConditions(safe=False, cloud_cover_pct=90.0, read_at=now)
    beat = make_heartbeat("a", when=now).model_copy(update={"conditions": conditions})
    score = make_score("a", 1).model_copy(update={"thumbnail_png_b64": "iVBORw0KGgo="})
    writer.write("site-heartbeat", [beat], now)
    writer.write("frame-score", [score], now)
    with engine.connect() as conn:
        site = conn.execute(select(Site.conditions)).scalar_one()
        stored = conn.execute(select(HeartbeatRow.conditions)).scalar_one()
        thumbnail = conn.execute(select(FrameScoreRow.thumbnail_png_b64)).scalar_one()
    assert site == stored == conditions.model_dump(mode="json")
    assert thumbnail == "iVBORw0KGgo="


def test_a_replan_withdraws_the_request_from_the_site_whose_weather_turned(engine, writer):
    now = datetime.now(UTC)
    store_source_overhead(engine, ["a", "b"], now)
    (first,) = plan_round(engine, SETTINGS, now)
    clouded = [make_score(first.site_id, i, QualityLabel.BAD) for i in range(10)]
    writer.write("frame-score", clouded, now)
    (second,) = plan_round(engine, SETTINGS, now + timedelta(seconds=5))
    assert second.site_id == ({"a", "b"} - {first.site_id}).pop()
    assert followup(engine, first.request_id).state == "replanned"
    cancels = [c for c in outbox.unsent_commands(engine) if isinstance(c, FollowUpCancel)]
    assert [(c.site_id, c.request_id) for c in cancels] == [(first.site_id, first.request_id)]
    assert cancels[0].reason == "replanned: site went weather"


async def commands_to(js, site_id: str):
    """A subscription to the commands for one site on the command stream."""
    return await js.pull_subscribe(f"fleet.cmd.{site_id}.>", stream=COMMAND_STREAM)


async def next_commands(sub, count: int, timeout_s: float = 20.0):
    """The next `count` commands from a subscription, decoded."""
    got = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        try:
            for msg in await sub.fetch(count - len(got), timeout=1):
                await msg.ack()
                got.append(decode(msg))
        except TimeoutError:
            continue
    return got


async def test_a_cancel_reaches_the_right_site_on_the_bus_and_its_answer_closes_it(
    coordinator, fleet_bus
):
    _, js = fleet_bus
    now = datetime.now(UTC)
    await asyncio.to_thread(store_source_overhead, coordinator.engine, ["a"], now)
    engine = coordinator.engine

    def sent() -> str | None:
        with engine.connect() as conn:
            return conn.execute(select(FollowUp.request_id)).scalar_one_or_none()

    rid = await eventually(sent)
    to_a = await commands_to(js, "a")
    (request,) = await next_commands(to_a, 1)
    assert isinstance(request, FollowUpRequest) and request.request_id == rid
    with engine.begin() as conn:
        assert actions.cancel_followup(conn, rid, datetime.now(UTC))
    (cancel,) = await next_commands(to_a, 1)
    assert isinstance(cancel, FollowUpCancel) and cancel.request_id == rid
    await publish(js, report("a", rid, FollowUpState.CANCELLED, datetime.now(UTC), reason="ok"))
    await eventually(lambda: followup(engine, rid).state == "cancelled")


async def test_commands_stored_while_the_coordinator_was_down_are_sent_when_it_starts(
    nats_server, fleet_bus, engine
):
    _, js = fleet_bus
    now = datetime.now(UTC)
    planned = await asyncio.to_thread(
        lambda: (store_source_overhead(engine, ["a"], now), plan_round(engine, SETTINGS, now))[1]
    )
    rid = planned[0].request_id
    with engine.begin() as conn:
        assert actions.cancel_followup(conn, rid, now)
    settings = coordinator_settings(
        nats_server.url, str(engine.url), serve_console=False, heartbeat_stale_s=3600.0
    )
    running = Coordinator(settings)
    await running.start()
    try:
        commands = await next_commands(await commands_to(js, "a"), 2)
    finally:
        await running.stop()
    assert [(type(c), c.request_id) for c in commands] == [
        (FollowUpRequest, rid),
        (FollowUpCancel, rid),
    ]
    assert outbox.unsent_commands(engine) == []

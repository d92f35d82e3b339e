"""The coordinator's store on SQLite and PostgreSQL: migrations build what the models describe,
times come back in UTC, late or repeated reports never move anything backwards, and each
frame's transient-search record is kept once."""

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from coordinator.service import open_store
from coordinator.store import reads, writes
from coordinator.store.migrations import upgrade_to_head
from coordinator.store.tables import Base, FollowUp, FrameScoreRow, Site, Target
from protos import (
    FollowUpState,
    FollowUpStatus,
    stable_message_id,
)
from protos.base import utc_now
from tests.coordinators import (
    make_heartbeat,
    make_score,
    make_search,
)


def test_migrations_build_exactly_the_tables_the_models_describe(database_url):
    engine = open_store(database_url)
    upgrade_to_head(engine)  # a second upgrade changes nothing
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []


def test_scores_keep_their_utc_times_and_duplicates_are_ignored(database_url):
    engine = open_store(database_url)
    when = utc_now().replace(microsecond=123456)
    score = make_score("teide", 1, when=when)
    with engine.begin() as conn:
        writes.write_frame_scores(conn, [score, score], when)
    with engine.begin() as conn:
        writes.write_frame_scores(conn, [score], when)
    with engine.connect() as conn:
        rows = conn.execute(select(FrameScoreRow.scored_at, FrameScoreRow.observed_at)).all()
    engine.dispose()
    assert rows == [(when, when)]
    assert rows[0][0].utcoffset() == timedelta(0)


def test_an_old_heartbeat_arriving_late_does_not_replace_the_newest(database_url):
    engine = open_store(database_url)
    now = utc_now()
    newest, older = (
        make_heartbeat("teide", when=now, queue=1),
        make_heartbeat("teide", when=now - timedelta(minutes=5), queue=9),
    )
    with engine.begin() as conn:
        writes.write_heartbeats(conn, [newest])
    with engine.begin() as conn:
        writes.write_heartbeats(conn, [older])
    with engine.connect() as conn:
        site = conn.execute(select(Site.heartbeat_at, Site.queue_depth)).one()
    engine.dispose()
    assert tuple(site) == (now, 1)


def status(state: FollowUpState, when, reason: str | None = None) -> FollowUpStatus:
    return FollowUpStatus(
        message_id=stable_message_id(FollowUpStatus.KIND, "teide", "t1-1", state.value),
        site_id="teide",
        created_at=when,
        request_id="t1-1",
        state=state,
        reason=reason,
    )


def test_followup_reports_move_it_forward_only(database_url):
    engine = open_store(database_url)
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(
            Target.__table__.insert().values(
                target_id=1,
                name="SF J1",
                ra_deg=1.0,
                dec_deg=2.0,
                first_seen=now,
                last_seen=now,
                n_detections=2,
                n_sites=2,
                n_frames=2,
                moving=False,
                confidence=0.9,
                priority=5,
            )
        )
        conn.execute(
            FollowUp.__table__.insert().values(
                request_id="t1-1",
                target_id=1,
                site_id="teide",
                state="sent",
                priority=5,
                score=0.5,
                deadline=now + timedelta(hours=6),
                sent_at=now,
                updated_at=now,
                reason="",
            )
        )
    later = [now + timedelta(minutes=m) for m in (1, 2, 3)]
    with engine.begin() as conn:
        writes.write_followup_statuses(conn, [status(FollowUpState.OBSERVING, later[1])])
    with engine.begin() as conn:  # a delayed "accepted" arrives after "observing"
        writes.write_followup_statuses(conn, [status(FollowUpState.ACCEPTED, later[0])])
    with engine.connect() as conn:
        after_late = conn.execute(select(FollowUp.state)).scalar_one()
    with engine.begin() as conn:
        writes.write_followup_statuses(conn, [status(FollowUpState.DONE, later[2])])
    with engine.connect() as conn:
        final = conn.execute(select(FollowUp.state)).scalar_one()
    engine.dispose()
    assert (after_late, final) == ("observing", "done")


def test_a_frame_search_record_is_stored_once_and_read_back_by_frame(database_url):
    engine = open_store(database_url)
    searched = make_search(make_score("teide", 1), candidates=2)
    skipped = make_search(make_score("teide", 2), skipped_reason="no reference for this field")
    with engine.begin() as conn:
        writes.write_frame_searches(conn, [searched, skipped, searched])
    with engine.begin() as conn:
        writes.write_frame_searches(conn, [skipped])
    with engine.connect() as conn:
        (record,) = reads.frame_searches(conn, searched.frame.sha256)
        (skipped_record,) = reads.frame_searches(conn, skipped.frame.sha256)
        per_site = reads.searches_by_site(conn)
    engine.dispose()
    assert (record.attempted, record.candidates, record.skipped_reason) == (True, 2, None)
    assert record.score_message_id == searched.score_message_id
    assert record.searched_at == searched.created_at
    assert (skipped_record.attempted, skipped_record.skipped_reason) == (
        False,
        "no reference for this field",
    )
    assert per_site == {"teide": (1, 1)}

"""Candidate fusion: detections within the match radius become one target, independent sites
raise confidence, single frames and moving objects are down-weighted; a single detection stays a
candidate, two frames or sites make a source, a moving object a tracklet, and an operator's
save or rejection stands."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from coordinator.fusion import Detection, group_positions, target_confidence, target_name
from coordinator.ingest import StoreWriter
from coordinator.service import open_store
from coordinator.store import actions
from coordinator.store.tables import CandidateRow, Target
from protos.base import utc_now
from tests.coordinators import make_candidate

ARCSEC = 1 / 3600


def test_positions_within_the_radius_join_the_nearest_group():
    groups = group_positions(
        [10.0, 10.0, 10.0 + 5 * ARCSEC, 200.0],
        [-30.0 + 1 * ARCSEC, -30.0 + 1.5 * ARCSEC, -30.0, 45.0],
        [10.0],
        [-30.0],
        radius_arcsec=2.0,
    )
    assert groups == [0, 0, 1, 2]


def test_positions_join_across_ra_zero():
    assert group_positions([0.0 + 0.5 * ARCSEC], [10.0], [360.0 - 0.5 * ARCSEC], [10.0], 2.0) == [0]


def test_a_second_independent_site_raises_confidence():
    one_site = [Detection("a", "f1", 0.8), Detection("a", "f2", 0.8)]
    two_sites = [Detection("a", "f1", 0.8), Detection("b", "f2", 0.8)]
    assert target_confidence(one_site, moving=False) == pytest.approx(0.8)
    assert target_confidence(two_sites, moving=False) == pytest.approx(0.96)


def test_single_frames_and_moving_objects_are_down_weighted():
    single = [Detection("a", "f1", 0.9)]
    pair = [Detection("a", "f1", 0.9), Detection("b", "f2", 0.9)]
    assert target_confidence(single, moving=False) == pytest.approx(0.45)
    assert target_confidence(pair, moving=True) == pytest.approx(0.99 * 0.2)


def test_target_names_follow_the_position():
    assert target_name(150.0, -30.5) == "SF J100000.00-303000.0"


@pytest.fixture
def writer(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'fusion.sqlite3'}")
    yield StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    engine.dispose()


def stored_targets(writer):
    with writer.engine.connect() as conn:
        return conn.execute(select(Target).order_by(Target.target_id)).all()


def test_detections_from_two_sites_and_nights_become_one_target(writer):
    night_1 = utc_now() - timedelta(days=1)
    writer.write(
        "transient-candidate", [make_candidate("a", "a1", 50.0, 10.0, when=night_1)], night_1
    )
    writer.write(
        "transient-candidate",
        [
            make_candidate("b", "b1", 50.0, 10.0 + 1.2 * ARCSEC, real_bogus=0.7),
            make_candidate("b", "b2", 50.0 + 8 * ARCSEC, 10.0, real_bogus=0.95),
        ],
        utc_now(),
    )
    targets = stored_targets(writer)
    assert [(t.n_detections, t.n_sites) for t in targets] == [(2, 2), (1, 1)]
    assert targets[0].first_seen == night_1
    assert targets[0].confidence == pytest.approx(1 - 0.1 * 0.3)
    assert targets[1].confidence == pytest.approx(0.95 * 0.5)
    with writer.engine.connect() as conn:
        unassigned = conn.execute(
            select(CandidateRow).where(CandidateRow.target_id.is_(None))
        ).all()
    assert unassigned == []


def test_a_detection_that_moved_between_frames_is_flagged_moving(writer):
    start = utc_now() - timedelta(hours=2)
    track = [
        make_candidate("a", "a1", 80.0, 5.0, when=start),
        make_candidate("a", "a2", 80.0 + 300 * ARCSEC, 5.0, when=start + timedelta(hours=1)),
    ]
    writer.write("transient-candidate", track, utc_now())
    targets = stored_targets(writer)
    assert [t.moving for t in targets] == [True, True]
    assert all(t.confidence < 0.2 for t in targets)


def statuses(writer):
    return [(t.status, t.promoted_by) for t in stored_targets(writer)]


def test_a_single_noise_detection_stays_a_candidate(writer):
    writer.write(
        "transient-candidate", [make_candidate("a", "a1", 30.0, 5.0, real_bogus=0.09)], utc_now()
    )
    assert statuses(writer) == [("candidate", None)]


def test_a_target_seen_in_two_frames_or_at_two_sites_becomes_a_source(writer):
    now = utc_now()
    writer.write("transient-candidate", [make_candidate("a", "a1", 30.0, 5.0)], now)
    writer.write("transient-candidate", [make_candidate("a", "a2", 30.0, 5.0)], now)
    writer.write("transient-candidate", [make_candidate("a", "a3", 60.0, 5.0)], now)
    writer.write("transient-candidate", [make_candidate("b", "b1", 60.0, 5.0)], now)
    assert statuses(writer) == [("source", "detections"), ("source", "detections")]
    assert all(t.promoted_at is not None for t in stored_targets(writer))


def test_a_moving_object_is_a_tracklet_not_a_source(writer):
    start = utc_now() - timedelta(hours=2)
    track = [
        make_candidate("a", "a1", 80.0, 5.0, when=start),
        make_candidate("a", "a2", 80.0 + 300 * ARCSEC, 5.0, when=start + timedelta(hours=1)),
    ]
    writer.write("transient-candidate", track, utc_now())
    assert statuses(writer) == [("tracklet", None), ("tracklet", None)]


def test_an_operators_save_or_rejection_stands_whatever_is_detected_later(writer):
    now = utc_now()
    writer.write(
        "transient-candidate",
        [make_candidate("a", "a1", 30.0, 5.0), make_candidate("a", "a2", 60.0, 5.0)],
        now,
    )
    saved, rejected = (t.target_id for t in stored_targets(writer))
    with writer.engine.begin() as conn:
        assert actions.save_target(conn, saved, "ada", now)
        assert actions.reject_target(conn, rejected, "ada", now)
        assert not actions.save_target(conn, 999, "ada", now)
    assert statuses(writer) == [("source", "user:ada"), ("rejected", "user:ada")]
    writer.write(
        "transient-candidate",
        [make_candidate("b", "b1", 30.0, 5.0), make_candidate("b", "b2", 60.0, 5.0)],
        now,
    )
    assert statuses(writer) == [("source", "user:ada"), ("rejected", "user:ada")]

"""The console's position lookups on a sky full of rows, on SQLite and PostgreSQL: the nearby
sources beside each candidate and a source page's upper limits are read through their indexes
(the database's own EXPLAIN names the index and scans no table), and the declination band they
search first loses nothing: they find exactly what an angular test of every row finds, at the
celestial pole and across RA 0/360 too."""

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, event, insert

from coordinator.store.engine import open_engine
from coordinator.store.migrations import upgrade_to_head
from coordinator.store.source_reads import (
    NEARBY_RADIUS_ARCSEC,
    nearby_sources,
    separations_deg,
    upper_limits,
)
from coordinator.store.tables import FrameSearchRow, Target, TargetStatus, table_of
from protos.base import utc_now
from protos.transients import SEARCHED_RADIUS_MAX_DEG

ROWS = 3000
"""Targets and searched frames each: enough that a planner with statistics prefers an index."""
PROBES = [(0.002, 45.0), (359.998, -30.0), (123.0, 89.995), (200.0, -89.99), (80.0, 10.0)]
"""(RA, Dec) looked up: across RA 0/360, at both poles, and somewhere plain."""
CLOSE_ARCSEC = (5.0, 30.0, 59.0, 61.0, 90.0)
"""Sources placed around each probe: three within `NEARBY_RADIUS_ARCSEC`, two beyond."""
EXPLAIN = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}


def _sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` positions uniform over the sky (degrees)."""
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def _offset(ra_deg: float, dec_deg: float, arcsec: float, angle: float) -> tuple[float, float]:
    """The position `arcsec` from (ra, dec) towards position angle `angle` (radians)."""
    step = arcsec / 3600.0
    dec = min(max(dec_deg + step * np.cos(angle), -90.0), 90.0)
    ra = ra_deg + step * np.sin(angle) / max(np.cos(np.radians(dec)), 1e-6)
    return float(ra % 360.0), float(dec)


def _fill(conn: Connection) -> None:
    rng = np.random.default_rng(7)
    now = utc_now()
    statuses = [s.value for s in TargetStatus]
    ras, decs = _sphere(rng, ROWS)
    rows = [(float(r), float(d), statuses[i % len(statuses)]) for i, (r, d) in enumerate(
        zip(ras, decs, strict=True))]  # fmt: skip
    for k, (ra, dec) in enumerate(PROBES):
        for arcsec in CLOSE_ARCSEC:
            rows.append((*_offset(ra, dec, arcsec, rng.uniform(0, 2 * np.pi)), "source"))
        rows.append((*_offset(ra, dec, 10.0, 1.0), "candidate"))  # near, but not a source
        rows.append((*_offset(ra, dec, 20.0, 2.0), "tracklet" if k % 2 else "rejected"))
    conn.execute(insert(table_of(Target)), [
        {"name": f"T{i}", "ra_deg": ra, "dec_deg": dec, "first_seen": now, "last_seen": now,
         "n_detections": 1, "n_sites": 1, "n_frames": 1, "confidence": 0.5, "status": status}
        for i, (ra, dec, status) in enumerate(rows)
    ])  # fmt: skip
    ras, decs = _sphere(rng, ROWS)
    radii = rng.uniform(0.05, SEARCHED_RADIUS_MAX_DEG, ROWS)
    radii[::50] = SEARCHED_RADIUS_MAX_DEG  # the widest a search may claim
    conn.execute(insert(table_of(FrameSearchRow)), [
        {"message_id": f"frame-searched:{i:032x}", "site_id": f"s{i % 3}",
         "searched_at": now, "observed_at": now - timedelta(seconds=i), "file_name": f"f{i}.fits",
         "frame_sha256": f"{i:064x}", "score_message_id": f"frame-score:{i:032x}",
         "attempted": i % 7 != 0, "candidates": 0, "filter": "r", "pointing_ra_deg": float(ra),
         "pointing_dec_deg": float(dec), "searched_radius_deg": float(radius),
         "limiting_mag": None if i % 11 == 0 else 20.0 + i / ROWS}
        for i, (ra, dec, radius) in enumerate(zip(ras, decs, radii, strict=True))
    ])  # fmt: skip
    conn.exec_driver_sql("ANALYZE")


@pytest.fixture
def sky(database_url: str) -> Iterator[Engine]:
    engine = open_engine(database_url)
    upgrade_to_head(engine)
    with engine.begin() as conn:
        _fill(conn)
    yield engine
    engine.dispose()


def _plans(engine: Engine, conn: Connection, lookup: object) -> list[str]:
    """Run a lookup and return the database's plan of each SELECT it sent."""
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        lookup()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    prefix = EXPLAIN[engine.dialect.name]
    return [
        "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + statement, parameters))
        for statement, parameters in sent
    ]


def _ranges(plan: str, index: str, column: str) -> bool:
    """Whether the plan reads `index` with a condition on `column` (SQLite names both on one
    line, PostgreSQL in the index scan's `Index Cond`)."""
    conditions = [line for line in plan.splitlines() if "USING INDEX" in line or "Cond:" in line]
    return index in plan and any(column in line for line in conditions)


def test_nearby_sources_and_upper_limits_use_indexes_and_find_what_every_row_holds(sky):
    engine = sky
    with engine.connect() as conn:
        targets = conn.execute(table_of(Target).select()).all()
        searches = conn.execute(table_of(FrameSearchRow).select()).all()
        near_plans = _plans(engine, conn, lambda: nearby_sources(conn, PROBES))
        limit_plans = _plans(engine, conn, lambda: upper_limits(conn, *PROBES[4], set()))
        near = nearby_sources(conn, PROBES)
        limits = [upper_limits(conn, ra, dec, set()) for ra, dec in PROBES]

    assert len(near_plans) == 1 and len(limit_plans) == 1  # one query for all positions
    for plan in near_plans:
        assert _ranges(plan, "ix_targets_status_dec", "dec_deg"), plan
        assert "SCAN targets" not in plan and "Seq Scan on targets" not in plan, plan
    (plan,) = limit_plans
    assert _ranges(plan, "ix_frame_searches_pointing_dec", "pointing_dec_deg"), plan
    assert "SCAN frame_searches" not in plan and "Seq Scan on frame_searches" not in plan, plan

    known = [t for t in targets if t.status in ("source", "tracklet")]
    usable = [s for s in searches if s.attempted and s.limiting_mag is not None]
    for (ra, dec), found, limited in zip(PROBES, near, limits, strict=True):
        apart = np.array(separations_deg(ra, dec, [t.ra_deg for t in known],
                                         [t.dec_deg for t in known])) * 3600.0  # fmt: skip
        expected = sorted(
            (float(a), t.target_id) for t, a in zip(known, apart, strict=True)
            if a <= NEARBY_RADIUS_ARCSEC
        )  # fmt: skip
        assert [(n.separation_arcsec, n.target_id) for n in found] == expected
        assert len(found) >= 3  # the three placed within the radius, at least
        covered = separations_deg(
            ra, dec, [s.pointing_ra_deg for s in usable], [s.pointing_dec_deg for s in usable]
        )
        expected_limits = sorted(
            (s.observed_at, s.limiting_mag) for s, d in zip(usable, covered, strict=True)
            if d <= s.searched_radius_deg
        )  # fmt: skip
        assert [(u.observed_at, u.mag) for u in limited] == expected_limits
        assert expected_limits  # the probe is covered by some frames

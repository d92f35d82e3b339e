"""Batch writes of ingested messages: one statement per kind, duplicates ignored by message id.

Each function takes an open connection inside the caller's transaction, so a batch is stored
all or nothing and acknowledged on the bus only after the commit.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from coordinator.followup_states import FollowUpPhase, Progress, progress_after_report
from coordinator.store.tables import (
    RESTARTS_MAX_CHARS,
    CandidateRow,
    FollowUp,
    FollowUpStatusRow,
    FrameRejectionRow,
    FrameScoreRow,
    FrameSearchRow,
    HeartbeatRow,
    Site,
    UtcDateTime,
    table_of,
)
from protos import (
    FollowUpStatus,
    FrameRejected,
    FrameScore,
    FrameSearched,
    SiteConfig,
    SiteHeartbeat,
    TransientCandidate,
)
from protos.base import utc_now

SiteMessage = TypeVar("SiteMessage", SiteHeartbeat, SiteConfig)

SQLITE_MAX_VARIABLES = 32766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(conn: Connection, table: Table) -> Any:
    return _INSERTS[conn.dialect.name](table)


def insert_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key is already stored."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def _driver_time(dialect: str, value: datetime | None) -> str | datetime | None:
    """A UTC time as `UtcDateTime` stores it, ready for the driver itself."""
    if value is None:
        return None
    naive = value.astimezone(UTC).replace(tzinfo=None)
    # The text SQLAlchemy's SQLite DateTime writes: 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return naive.isoformat(" ", "microseconds") if dialect == "sqlite" else naive


def bulk_insert_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """`insert_new` for high-volume plain rows (numbers, strings, UTC times), skipping
    SQLAlchemy's per-row type processing: PostgreSQL gets the rows by COPY into a temporary
    table (emptied at commit), SQLite as multi-row INSERTs (one statement step, so one release
    of the GIL, per few hundred rows rather than per row)."""
    if not rows:
        return
    dialect = conn.dialect.name
    columns = list(rows[0])
    times = {c for c in columns if isinstance(table.c[c].type, UtcDateTime)}
    driver_rows = [
        [_driver_time(dialect, row[c]) if c in times else row[c] for c in columns] for row in rows
    ]
    if dialect == "postgresql":
        _copy_insert_new(conn, table, columns, driver_rows)
    else:
        _multi_row_insert_new(conn, table, columns, driver_rows)


def _multi_row_insert_new(
    conn: Connection, table: Table, columns: list[str], rows: list[list[Any]]
) -> None:
    quote = conn.dialect.identifier_preparer.quote
    target = conn.dialect.identifier_preparer.format_table(table)
    head = f"INSERT INTO {target} ({', '.join(quote(c) for c in columns)}) VALUES "
    one_row = f"({', '.join('?' * len(columns))})"
    per_statement = max(SQLITE_MAX_VARIABLES // len(columns), 1)
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        statement = head + ", ".join([one_row] * len(chunk)) + " ON CONFLICT DO NOTHING"
        conn.exec_driver_sql(statement, tuple(v for row in chunk for v in row))


def _copy_insert_new(
    conn: Connection, table: Table, columns: list[str], rows: list[list[Any]]
) -> None:
    quote = conn.dialect.identifier_preparer.quote
    target = conn.dialect.identifier_preparer.format_table(table)
    staging = quote(f"staging_{table.name}")
    names = ", ".join(quote(c) for c in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
            f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING"
        )


def write_frame_scores(
    conn: Connection, scores: Sequence[FrameScore], ingested_at: datetime
) -> None:
    """Store frame scores (figures the console aggregates)."""
    bulk_insert_new(
        conn,
        table_of(FrameScoreRow),
        [
            {
                "message_id": s.message_id,
                "site_id": s.site_id,
                "scored_at": s.created_at,
                "observed_at": s.frame.date_obs,
                "ingested_at": ingested_at,
                "file_name": s.frame.file_name,
                "frame_sha256": s.frame.sha256,
                "label": s.label.value,
                "confidence": s.confidence,
                "fwhm_arcsec": s.metrics.fwhm_arcsec,
                "background_adu": s.metrics.background_adu,
                "transparency": s.metrics.transparency,
                "source_count": s.metrics.source_count,
                "model_name": s.model.name,
                "model_version": s.model.version,
                "reasons": ",".join(r.reason for r in s.reasons),
                "thumbnail_png_b64": s.thumbnail_png_b64,
            }
            for s in scores
        ],
    )


def write_frame_searches(conn: Connection, searches: Sequence[FrameSearched]) -> None:
    """Store each frame's transient-search record (searched, or skipped and why)."""
    bulk_insert_new(
        conn,
        table_of(FrameSearchRow),
        [
            {
                "message_id": s.message_id,
                "site_id": s.site_id,
                "searched_at": s.created_at,
                "observed_at": s.frame.date_obs,
                "file_name": s.frame.file_name,
                "frame_sha256": s.frame.sha256,
                "score_message_id": s.score_message_id,
                "attempted": s.search.attempted,
                "candidates": s.search.candidates,
                "skipped_reason": s.search.skipped_reason,
                "search_ms": s.search_ms,
                "filter": s.frame.filter,
                "pointing_ra_deg": s.frame.pointing.ra_deg if s.frame.pointing else None,
                "pointing_dec_deg": s.frame.pointing.dec_deg if s.frame.pointing else None,
                "searched_radius_deg": s.search.searched_radius_deg,
                "limiting_mag": s.search.limiting_mag,
            }
            for s in searches
        ],
    )


def write_rejections(conn: Connection, rejections: Sequence[FrameRejected]) -> None:
    """Store rejected files."""
    insert_new(
        conn,
        table_of(FrameRejectionRow),
        [
            {
                "message_id": r.message_id,
                "site_id": r.site_id,
                "rejected_at": r.created_at,
                "file_name": r.file_name,
                "reason": r.reason.value,
                "message": r.message,
            }
            for r in rejections
        ],
    )


def _latest_per_site(messages: Sequence[SiteMessage]) -> list[SiteMessage]:
    latest: dict[str, SiteMessage] = {}
    for message in messages:
        known = latest.get(message.site_id)
        if known is None or message.created_at > known.created_at:
            latest[message.site_id] = message
    return list(latest.values())


def _upsert_sites(conn: Connection, rows: list[dict[str, Any]], newer_than: str) -> None:
    """Insert or update site rows, only where the row's `newer_than` time is newer."""
    if not rows:
        return
    table = table_of(Site)
    statement = _insert(conn, table)
    columns = [c for c in rows[0] if c != "site_id"]
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["site_id"],
            set_={c: statement.excluded[c] for c in columns},
            where=or_(
                table.c[newer_than].is_(None), table.c[newer_than] < statement.excluded[newer_than]
            ),
        ),
        rows,
    )


def write_heartbeats(conn: Connection, heartbeats: Sequence[SiteHeartbeat]) -> None:
    """Store heartbeats and keep each site's latest one on its site row, with when the centre
    received it (by its own clock)."""
    received_at = utc_now()
    insert_new(
        conn,
        table_of(HeartbeatRow),
        [
            {
                "message_id": h.message_id,
                "site_id": h.site_id,
                "sent_at": h.created_at,
                "model_version": h.model_version,
                "queue_depth": sum(h.queue_depths.values()),
                "frames_scored": h.frames_scored,
                "conditions": h.conditions.model_dump(mode="json") if h.conditions else None,
            }
            for h in heartbeats
        ],
    )
    _upsert_sites(
        conn,
        [
            {
                "site_id": h.site_id,
                "heartbeat_at": h.created_at,
                "heartbeat_received_at": received_at,
                "agent_version": h.agent_version,
                "model_version": h.model_version,
                "queue_depth": sum(h.queue_depths.values()),
                "link_state": h.link_state.value,
                "conditions": h.conditions.model_dump(mode="json") if h.conditions else None,
                "restarts": ",".join(f"{part}={n}" for part, n in sorted(h.restarts.items()))[
                    :RESTARTS_MAX_CHARS
                ],
                "failed_frames": h.failed_frames,
            }
            for h in _latest_per_site(heartbeats)
        ],
        newer_than="heartbeat_at",
    )


def write_site_configs(conn: Connection, configs: Sequence[SiteConfig]) -> None:
    """Keep each site's newest configuration (location, horizon) on its site row."""
    _upsert_sites(
        conn,
        [
            {
                "site_id": c.site_id,
                "config_at": c.created_at,
                "name": c.name,
                "lat_deg": c.location.lat_deg,
                "lon_deg": c.location.lon_deg,
                "height_m": c.location.height_m,
                "horizon_limit_deg": c.horizon_limit_deg,
            }
            for c in _latest_per_site(configs)
        ],
        newer_than="config_at",
    )


def write_candidates(conn: Connection, candidates: Sequence[TransientCandidate]) -> None:
    """Store transient candidates, not yet fused into targets."""
    insert_new(
        conn,
        table_of(CandidateRow),
        [
            {
                "message_id": c.message_id,
                "site_id": c.site_id,
                "target_id": None,
                "observed_at": c.observed_at,
                "frame_sha256": c.frame_sha256,
                "frame_file_name": c.frame_file_name,
                "ra_deg": c.ra_deg,
                "dec_deg": c.dec_deg,
                "flux_adu": c.flux_adu,
                "flux_err_adu": c.flux_err_adu,
                "snr": c.snr,
                "mag": c.mag,
                "mag_err": c.mag_err,
                "filter": c.filter,
                "real_bogus": c.real_bogus,
                "cutouts": c.cutouts.model_dump(mode="json"),
            }
            for c in candidates
        ],
    )


def write_followup_statuses(conn: Connection, statuses: Sequence[FollowUpStatus]) -> None:
    """Store site reports (each with its exposures) and move each follow-up forward: its phase
    and exposures done (late or repeated reports are kept but change nothing)."""
    insert_new(
        conn,
        table_of(FollowUpStatusRow),
        [
            {
                "message_id": s.message_id,
                "request_id": s.request_id,
                "site_id": s.site_id,
                "state": s.state.value,
                "reported_at": s.created_at,
                "reason": s.reason,
                "exposures_done": s.exposures_done,
                "exposures_total": s.exposures_total,
            }
            for s in statuses
        ],
    )
    table = table_of(FollowUp)
    for status in sorted(statuses, key=lambda s: (s.created_at, s.exposures_done)):
        current = conn.execute(
            select(table.c.state, table.c.exposures_done, table.c.exposures_total).where(
                table.c.request_id == status.request_id, table.c.site_id == status.site_id
            )
        ).one_or_none()
        if current is None:
            continue
        progress = progress_after_report(
            Progress(FollowUpPhase(current.state), current.exposures_done or 0),
            status.state,
            status.exposures_done,
        )
        if progress is not None:
            conn.execute(
                update(table)
                .where(table.c.request_id == status.request_id)
                .values(
                    state=progress.phase.value,
                    exposures_done=progress.exposures_done,
                    exposures_total=status.exposures_total or current.exposures_total,
                    updated_at=status.created_at,
                    reason=status.reason or "",
                )
            )

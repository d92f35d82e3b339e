"""The frames waiting for their transient search, kept on disk so a restart loses none.

A frame enters when its `FrameScore` is acknowledged, before the frame is recorded as done, and
leaves when its `FrameSearched` is acknowledged; in between it is a row in one small SQLite file
in the site's work folder: the file's path (as the bytes the file system has: a name need not
be UTF-8) and the score, no pixels (the search reads the frame again). A crash at any point
therefore repeats work (stored once, by message id) and never drops it. The backlog is
bounded: beyond `limit`, the oldest frames not being searched are marked, on disk, to be
reported as not searched, so even a skipped frame gets its `FrameSearched` record.
"""

import os
import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from protos import FrameScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    score_message_id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    score TEXT NOT NULL,
    skipped_reason TEXT
)
"""
_ADD_SKIPPED_REASON = "ALTER TABLE pending ADD COLUMN skipped_reason TEXT"
"""A backlog written before skipped frames were marked on disk gains the column in place."""


class PendingSearch(BaseModel):
    """One scored frame whose search has not been published yet; `skipped_reason` when it is
    to be reported as not searched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    score: FrameScore
    skipped_reason: str | None = None


class SearchBacklog:
    """Scored frames in the order they were scored; `close()` when done (`contextlib.closing`)."""

    def __init__(self, db_path: Path, limit: int) -> None:
        self.limit = limit
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pending)")}
        if "skipped_reason" not in columns:
            self._db.execute(_ADD_SKIPPED_REASON)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def add(self, pending: PendingSearch, *, busy: str | None = None) -> int:
        """Queue a frame (again: no-op). Beyond the limit, the oldest frames still to be searched
        (never `busy`, the score id of the frame being searched now) are marked to be reported as
        not searched; returns how many were marked."""
        self._db.execute(
            "INSERT OR IGNORE INTO pending (score_message_id, path, score) VALUES (?, ?, ?)",
            (pending.score.message_id, os.fsencode(pending.path), pending.score.model_dump_json()),
        )
        waiting = "skipped_reason IS NULL AND score_message_id IS NOT ?"
        excess = self._count(waiting, busy) - self.limit + (busy is not None)
        if excess <= 0:
            return 0
        reason = f"search backlog full ({self.limit} frames): not searched"
        marked = self._db.execute(
            f"UPDATE pending SET skipped_reason = ? WHERE seq IN "
            f"(SELECT seq FROM pending WHERE {waiting} ORDER BY seq LIMIT ?)",
            (reason, busy, excess),
        )
        return marked.rowcount

    def oldest(self) -> PendingSearch | None:
        row = self._db.execute(
            "SELECT path, score, skipped_reason FROM pending ORDER BY seq LIMIT 1"
        ).fetchone()
        return self._entry(row) if row else None

    def done(self, pending: PendingSearch) -> None:
        """The frame's search (or its skip) is published: forget it."""
        self._db.execute(
            "DELETE FROM pending WHERE score_message_id = ?", (pending.score.message_id,)
        )

    def _count(self, where: str, busy: str | None) -> int:
        query = f"SELECT COUNT(*) FROM pending WHERE {where}"
        return int(self._db.execute(query, (busy,)).fetchone()[0])

    @staticmethod
    def _entry(row: tuple[bytes | str, str, str | None]) -> PendingSearch:
        return PendingSearch(
            path=Path(os.fsdecode(row[0])),
            score=FrameScore.model_validate_json(row[1]),
            skipped_reason=row[2],
        )

"""The frames waiting for their transient search, kept on disk so a restart loses none.

A frame enters when its `FrameScore` is acknowledged and leaves when its `FrameSearched` is;
in between it is a row in one small SQLite file in the site's work folder (the file's path and
the score, no pixels: the search reads the frame again). The backlog is bounded: beyond
`limit`, the oldest frames are handed back to be reported as not searched.
"""

import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from protos import FrameScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    score_message_id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    score TEXT NOT NULL
)
"""


class PendingSearch(BaseModel):
    """One scored frame whose search has not been published yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    score: FrameScore


class SearchBacklog:
    """Scored frames in the order they were scored; `close()` when done (`contextlib.closing`)."""

    def __init__(self, db_path: Path, limit: int) -> None:
        self.limit = limit
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def add(self, pending: PendingSearch) -> list[PendingSearch]:
        """Queue a frame (again: no-op); returns the oldest ones pushed out by the limit."""
        self._db.execute(
            "INSERT OR IGNORE INTO pending (score_message_id, path, score) VALUES (?, ?, ?)",
            (pending.score.message_id, str(pending.path), pending.score.model_dump_json()),
        )
        excess = len(self) - self.limit
        if excess <= 0:
            return []
        rows = self._db.execute(
            "SELECT path, score FROM pending ORDER BY seq LIMIT ?", (excess,)
        ).fetchall()
        return [self._entry(row) for row in rows]

    def oldest(self) -> PendingSearch | None:
        row = self._db.execute("SELECT path, score FROM pending ORDER BY seq LIMIT 1").fetchone()
        return self._entry(row) if row else None

    def done(self, pending: PendingSearch) -> None:
        """The frame's search is published: forget it."""
        self._db.execute(
            "DELETE FROM pending WHERE score_message_id = ?", (pending.score.message_id,)
        )

    @staticmethod
    def _entry(row: tuple[str, str]) -> PendingSearch:
        return PendingSearch(path=Path(row[0]), score=FrameScore.model_validate_json(row[1]))

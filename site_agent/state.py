"""The processed-frames store: which files the agent has finished with, across restarts.

One SQLite file in the site's work folder. A file is identified by its path and a cheap
fingerprint (size, mtime in ns) so a restart skips finished files without re-reading them;
the row also keeps the file's sha256 and the id of the message that settled it. A row is
written only after that message was acknowledged by JetStream, so a crash before the
acknowledgement means the file is processed again and republished with the same stable
message id, which JetStream stores once.
"""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict

from imaging.file_names import printable_name

Outcome = Literal["scored", "rejected"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    outcome TEXT NOT NULL,
    message_id TEXT NOT NULL,
    settled_at TEXT NOT NULL,
    PRIMARY KEY (path, size_bytes, mtime_ns)
)
"""


class FileFingerprint(BaseModel):
    """What identifies one version of a file without reading it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    size_bytes: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Self:
        """The fingerprint of a file (or directory) as it is now; raises OSError if it is gone."""
        stat = path.lstat()
        # SQLite keeps text as UTF-8: a name that is not is kept by its printable form
        return cls(
            path=printable_name(path.absolute()),
            size_bytes=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
        )


class SettledFrame(BaseModel):
    """A file the agent has finished with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: FileFingerprint
    sha256: str | None
    outcome: Outcome
    message_id: str
    settled_at: datetime


class ProcessedFrames:
    """The SQLite store of settled files. Use as a context manager or call `close()`."""

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def is_settled(self, fingerprint: FileFingerprint) -> bool:
        """Whether this version of this file was already scored or rejected."""
        row = self._db.execute(
            "SELECT 1 FROM frames WHERE path=? AND size_bytes=? AND mtime_ns=?",
            (fingerprint.path, fingerprint.size_bytes, fingerprint.mtime_ns),
        ).fetchone()
        return row is not None

    def settle(
        self,
        fingerprint: FileFingerprint,
        *,
        sha256: str | None,
        outcome: Outcome,
        message_id: str,
    ) -> SettledFrame:
        """Record that a file is finished (call after its message was acknowledged)."""
        settled = SettledFrame(
            fingerprint=fingerprint,
            sha256=sha256,
            outcome=outcome,
            message_id=message_id,
            settled_at=datetime.now(UTC),
        )
        self._db.execute(
            "INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                fingerprint.path,
                fingerprint.size_bytes,
                fingerprint.mtime_ns,
                sha256,
                outcome,
                message_id,
                settled.settled_at.isoformat(),
            ),
        )
        return settled

    def count(self, outcome: Outcome | None = None) -> int:
        """How many files are settled (with this outcome, if given)."""
        if outcome is None:
            row = self._db.execute("SELECT COUNT(*) FROM frames").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM frames WHERE outcome=?", (outcome,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The quarantine folder: files that could not be scored, each put aside with a reason file.

A rejected file goes out of the watched folder (so it is never picked up again) into
`quarantine_dir`, next to `<name>.reason.json` saying why; the matching `FrameRejected` message
carries the same reason to the centre. The order keeps the message true and loses nothing:
1. `place_in_quarantine`, before publishing: the file is hard-linked into the quarantine folder
   (copied where the folder is on another file system) with its reason file. If that fails (a
   read-only or full quarantine folder), the message says so and names no quarantine path.
2. the message is published;
3. `remove_original`, after the acknowledgement: the file leaves the watched folder.
A crash before 3 leaves the file in the watched folder: it is processed again and the same
message (same id) is stored once; the earlier copy stays in quarantine under its own name.
Placing never overwrites an earlier file of the same name. If the original cannot be removed
(a read-only camera share), it stays where it is, the processed-frames store keeps it from being
retried, and the log says so. The reason file and the log name files printably
(`imaging.file_names`).
"""

import contextlib
import errno
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from imaging.file_names import printable_name
from protos import RejectReason

log = logging.getLogger(__name__)

REASON_SUFFIX = ".reason.json"
COPY_INSTEAD_OF_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP})
"""Why a hard link may be refused where a copy still works: another file system, a file system
without hard links, too many links."""


def quarantine_target(quarantine_dir: Path, name: str) -> Path:
    """Where a rejected file of this name will go (never over an earlier one)."""
    target = quarantine_dir / name
    counter = 1
    while target.exists() or target.is_symlink() or _reason_path(target).exists():
        target = quarantine_dir / f"{name}.{counter}"
        counter += 1
    return target


def _reason_path(target: Path) -> Path:
    return target.with_name(target.name + REASON_SUFFIX)


def place_in_quarantine(path: Path, target: Path, reason: RejectReason, message: str) -> str | None:
    """Put the rejected file (or directory) at `target`, with its reason file beside it, leaving
    the original where it is. Returns None when it is placed, else why it could not be."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, target, symlinks=True)
        else:
            _link_or_copy(path, target)
        record = {
            "file_name": printable_name(path.name),
            "original_path": printable_name(path),
            "quarantine_path": printable_name(target),
            "reason": reason.value,
            "message": message,
            "quarantined_at": datetime.now(UTC).isoformat(),
        }
        _reason_path(target).write_text(json.dumps(record, indent=2))
    except OSError as exc:
        for partial in (target, _reason_path(target)):
            with contextlib.suppress(OSError):
                _remove(partial)
        log.error(
            "cannot quarantine file=%s quarantine=%s error=%r",
            printable_name(path),
            printable_name(target.parent),
            exc,
        )
        return f"{exc.strerror or exc} ({printable_name(target.parent)})"
    return None


def _link_or_copy(path: Path, target: Path) -> None:
    try:
        os.link(path, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in COPY_INSTEAD_OF_LINK:
            raise
        shutil.copy2(path, target, follow_symlinks=False)


def remove_original(path: Path) -> bool:
    """Take a quarantined file out of the watched folder. Returns whether it is gone."""
    try:
        _remove(path)
    except OSError as exc:
        log.error("rejected file left in place file=%s error=%r", printable_name(path), exc)
        return False
    return True


def _remove(path: Path) -> None:
    """Delete a file, link or folder; one already gone is fine."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

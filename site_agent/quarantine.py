"""The quarantine folder: files that could not be scored, each moved aside with a reason file.

A rejected file is moved out of the watched folder (so it is never picked up again) into
`quarantine_dir`, next to `<name>.reason.json` saying why; the matching `FrameRejected`
message carries the same reason to the centre. The target is chosen first, the message is
published, and only then is the file moved, so a crash in between repeats the same message
(same id, stored once) instead of losing it. Moving never overwrites an earlier file of the
same name. If the move itself fails (a read-only camera share), the file stays where it is and
the reason file says so; the processed-frames store keeps it from being retried.
"""

import contextlib
import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from protos import RejectReason

log = logging.getLogger(__name__)

REASON_SUFFIX = ".reason.json"


def quarantine_target(quarantine_dir: Path, name: str) -> Path:
    """Where a rejected file of this name will go (never over an earlier one)."""
    target = quarantine_dir / name
    counter = 1
    while target.exists() or _reason_path(target).exists():
        target = quarantine_dir / f"{name}.{counter}"
        counter += 1
    return target


def _reason_path(target: Path) -> Path:
    return target.with_name(target.name + REASON_SUFFIX)


def move_to_quarantine(path: Path, target: Path, reason: RejectReason, message: str) -> bool:
    """Move a rejected file (or directory) to `target` and write its reason file beside it.

    Returns whether the file was moved (if not, it is left in place).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = True
    try:
        shutil.move(str(path), str(target))
    except OSError as exc:
        log.error("quarantine move failed file=%s error=%r", path, exc)
        moved = False
    record = {
        "file_name": path.name,
        "original_path": str(path),
        "quarantine_path": str(target) if moved else None,
        "reason": reason.value,
        "message": message,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    with contextlib.suppress(OSError):
        _reason_path(target).write_text(json.dumps(record, indent=2))
    return moved

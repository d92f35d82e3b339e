"""Version numbers of a model repository: the next free one, reserved so that two runs never
take the same, and a finished version folder published in one rename.

A model folder (`<repository>/<name>/`) holds numbered version folders (Triton's layout). A run
that will release a version first *reserves* a number: it creates `<name>/.reserved-<N>` with
`O_CREAT | O_EXCL`, which the file system grants to exactly one caller, after looking at both the
version folders and the other runs' reservations. The number is free while the run builds the
version in a staging folder beside it, and the run publishes it with one rename
(`publish_version`), then drops its reservation. Two runs racing for the next number get two
numbers; a run that dies between reserving and publishing leaves a gap, never a collision.
Triton ignores entries whose names are not numbers, so neither reservations nor staging folders
are ever loaded.
"""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

RESERVATION_PREFIX = ".reserved-"
PUBLISHED_DIR_MODE = 0o755


class VersionTakenError(RuntimeError):
    """The version asked for exists already, or another run is releasing it."""


def released_versions(model_dir: Path) -> list[int]:
    """The numbered version folders in `model_dir`, ascending (none if it does not exist)."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(child.name) for child in model_dir.iterdir() if child.name.isdigit() and child.is_dir()
    )


def reserved_versions(model_dir: Path) -> list[int]:
    """The numbers other runs have reserved and not published yet."""
    if not model_dir.is_dir():
        return []
    found = []
    for child in model_dir.iterdir():
        number = child.name.removeprefix(RESERVATION_PREFIX)
        if child.name.startswith(RESERVATION_PREFIX) and number.isdigit():
            found.append(int(number))
    return sorted(found)


def next_free_version(model_dir: Path, at_least: int = 1) -> int:
    """One more than every released or reserved version (and at least `at_least`)."""
    taken = released_versions(model_dir) + reserved_versions(model_dir)
    return max([at_least - 1, *taken]) + 1


def _reservation(model_dir: Path, version: int) -> Path:
    return model_dir / f"{RESERVATION_PREFIX}{version}"


def _try_reserve(model_dir: Path, version: int) -> bool:
    """Create the reservation of `version` if nobody holds it and no such version exists."""
    marker = _reservation(model_dir, version)
    try:
        descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as stream:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        stream.write(f"pid {os.getpid()} on {socket.gethostname()} at {stamp}\n")
    if (model_dir / str(version)).exists():  # published between our look and our claim
        marker.unlink(missing_ok=True)
        return False
    return True


@contextmanager
def reserved_version(
    model_dir: Path, version: int | None = None, at_least: int = 1
) -> Iterator[int]:
    """Hold a version number of `model_dir` for as long as the block runs.

    With `version`, exactly that one (`VersionTakenError` if it exists or is held); otherwise the
    next free one, never below `at_least`. The reservation is dropped when the block ends,
    whether the version was published or not.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is not None:
        if (model_dir / str(version)).exists():
            raise VersionTakenError(
                f"{model_dir / str(version)} exists: released versions are never overwritten"
            )
        if not _try_reserve(model_dir, version):
            raise VersionTakenError(
                f"{model_dir / str(version)} exists or is being released by another run"
            )
        chosen = version
    else:
        chosen = next_free_version(model_dir, at_least)
        while not _try_reserve(model_dir, chosen):
            chosen = next_free_version(model_dir, max(at_least, chosen + 1))
    try:
        yield chosen
    finally:
        _reservation(model_dir, chosen).unlink(missing_ok=True)


def publish_version(staging: Path, version_dir: Path) -> Path:
    """Move a finished staging folder to `version_dir` in one rename (readable by a server
    running as another user); refuses to replace an existing version."""
    staging.chmod(PUBLISHED_DIR_MODE)  # mkdtemp makes it private; servers must read it
    if version_dir.exists():
        raise VersionTakenError(f"{version_dir} exists: released versions are never overwritten")
    try:
        os.rename(staging, version_dir)  # fails if a non-empty folder took the name meanwhile
    except OSError as exc:
        raise VersionTakenError(f"{version_dir} appeared while it was being released") from exc
    return version_dir

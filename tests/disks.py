"""Real file-system faults for tests: a small tmpfs mounted on a test folder, a folder made
read-only (the suite runs as root, as CI does), undone at the end of the block."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def small_disk(mount_point: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` mounted on `mount_point` for the duration of the block."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (run as root): {mounted.stderr}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    return filler


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` made read-only, even for root (a read-only bind mount over itself), for the
    duration of the block."""
    for args in (["--bind", str(folder), str(folder)], ["-o", "remount,bind,ro", str(folder)]):
        mounted = subprocess.run(["mount", *args], capture_output=True, text=True)
        assert mounted.returncode == 0, f"cannot mount read-only (run as root): {mounted.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)

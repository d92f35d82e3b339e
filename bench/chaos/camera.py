"""The camera of a chaos scenario: a pool of distinct simulated frames made once per suite run
(`frame_pool`), and a `Camera` that puts them into the site's folder one every `cadence_s`, in
bursts, out of order, or as files no reader accepts, and remembers every name it wrote: the
first column of the count.

Each frame is renamed into the folder from a staging folder on the same disk, as a camera's
software does, so the agent never sees half a file. Frames are told apart by content (a
message's id is the site and the frame's sha256), so the pool holds `count` different frames.
"""

import asyncio
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from protos import QualityLabel
from tests.site_agents import simulated_frames

LABELS = [QualityLabel.GOOD, QualityLabel.GOOD, QualityLabel.MEDIUM, QualityLabel.BAD]
"""The mix a night gives: mostly good frames, some medium and bad ones."""
POOL_SEED = 20261203


def frame_pool(folder: Path, count: int) -> list[Path]:
    """`count` distinct 256² frames in `folder` (made once; reused when already there)."""
    existing = sorted(folder.glob("sim-*.fits")) if folder.is_dir() else []
    if len(existing) >= count:
        return existing[:count]
    labels = [LABELS[i % len(LABELS)] for i in range(count)]
    return [path for path, _ in simulated_frames(folder, labels, seed=POOL_SEED)]


class Camera:
    """Writes pool frames into `folder`; `written` holds every file name it wrote, in order."""

    def __init__(self, pool: list[Path], folder: Path, staging: Path, cadence_s: float) -> None:
        self.pool = pool
        self.folder = folder
        self.staging = staging
        self.cadence_s = cadence_s
        self.written: list[str] = []
        self.stopped = asyncio.Event()
        self._next = 0
        staging.mkdir(parents=True, exist_ok=True)
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def left(self) -> int:
        return len(self.pool) - self._next

    def write(self, count: int = 1, *, shuffled: bool = False) -> list[str]:
        """Write the next `count` pool frames at once (in a random order if `shuffled`)."""
        chosen = self.pool[self._next : self._next + count]
        self._next += len(chosen)
        if shuffled:
            chosen = random.Random(len(self.written)).sample(chosen, len(chosen))
        for source in chosen:
            self._place(source.name, lambda target, source=source: shutil.copyfile(source, target))
        return [path.name for path in chosen]

    def write_unreadable(self, count: int) -> list[str]:
        """Write `count` files no FITS reader accepts (rejected and quarantined by the site)."""
        names = []
        for _ in range(count):
            name = f"unreadable-{len(self.written):04d}.fits"
            self._place(name, lambda target: target.write_bytes(b"not a FITS file\n" * 200))
            names.append(name)
        return names

    def _place(self, name: str, make: Callable[[Path], object]) -> None:
        staged = self.staging / name
        make(staged)
        os.rename(staged, self.folder / name)
        self.written.append(name)

    async def run(self) -> None:
        """One frame every `cadence_s` until stopped or the pool is used up."""
        while not self.stopped.is_set() and self.left > 0:
            self.write()
            await asyncio.sleep(self.cadence_s)

    async def until_written(self, count: int) -> None:
        while len(self.written) < count and self.left > 0:
            await asyncio.sleep(0.05)

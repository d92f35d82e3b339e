"""Finding complete FITS frames in the watched folder, each handed out once.

Events come from `watchdog`: inotify on Linux (no polling cost, a rename is seen at once), or
its polling observer for network shares where inotify sees nothing (`polling=True`). A file
is *complete* when it was renamed into place (the safe way for a camera to write), or when its
size and modification time have not changed for `settle_s`. Directories with a FITS name are
handed out too, so the reader can reject them. A slow full rescan catches anything the event
stream missed (an inotify queue overflow), and the start-up scan picks up files that arrived
while the agent was down; the processed-frames store then skips the ones already settled.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fit.fz", ".fz")


def is_frame_name(name: str) -> bool:
    """Whether a file name looks like a FITS frame (hidden files are temporary, not frames)."""
    return not name.startswith(".") and name.lower().endswith(FITS_SUFFIXES)


class _Handler(FileSystemEventHandler):
    """Forwards watchdog's events (from its thread) to the watch's event loop."""

    def __init__(self, watch: "FolderWatch", loop: asyncio.AbstractEventLoop) -> None:
        self._watch = watch
        self._loop = loop

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "closed_no_write", "opened"):
            return
        moved = isinstance(event, FileMovedEvent | DirMovedEvent)
        raw = event.dest_path if moved else event.src_path
        path = Path(os.fsdecode(raw))
        complete = moved or isinstance(event, DirCreatedEvent)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._watch.note, path, complete)


class FolderWatch:
    """Complete frames appearing in one folder, in arrival order, each path handed out once
    per version (size, mtime)."""

    def __init__(
        self,
        folder: Path,
        *,
        settle_s: float = 1.0,
        polling: bool = False,
        poll_interval_s: float = 1.0,
        rescan_interval_s: float = 60.0,
    ) -> None:
        self.folder = folder.absolute()
        self.settle_s = settle_s
        self.rescan_interval_s = rescan_interval_s
        self._polling = polling
        self._poll_interval_s = poll_interval_s
        self._pending: dict[Path, tuple[int, int, float]] = {}
        self._ready: OrderedDict[Path, float] = OrderedDict()
        self._handed: dict[Path, tuple[int, int]] = {}
        self._wakeup = asyncio.Event()
        self._observer: BaseObserver | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Files seen but not handed out yet (still being written, or complete and queued)."""
        return len(self._pending) + len(self._ready)

    def start(self) -> None:
        """Start watching (call from inside the running event loop)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        observer: BaseObserver = (
            PollingObserver(timeout=self._poll_interval_s) if self._polling else Observer()
        )
        observer.schedule(_Handler(self, asyncio.get_running_loop()), str(self.folder))
        observer.start()
        self._observer = observer
        self.rescan()
        self._ticker = asyncio.create_task(self._tick(), name="folder-watch")
        log.info(
            "watching folder=%s polling=%s settle_s=%s", self.folder, self._polling, self.settle_s
        )

    async def stop(self) -> None:
        """Stop watching; frames not handed out are found again by the next start-up scan."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._observer is not None:
            self._observer.stop()
            await asyncio.to_thread(self._observer.join, 5.0)
        self._observer = self._ticker = None

    async def next_ready(self) -> tuple[Path, float]:
        """The next complete frame and when it was found complete (`time.monotonic()`);
        waits until there is one."""
        while not self._ready:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._ready.popitem(last=False)

    def note(self, path: Path, complete: bool) -> None:
        """Take note of a file that appeared or changed; `complete` if renamed into place."""
        if path.parent != self.folder or not is_frame_name(path.name):
            return
        try:
            stat = path.stat()
        except OSError:
            if path.is_symlink() or complete:
                self._make_ready(path, (-1, -1))
            return
        version = (stat.st_size, stat.st_mtime_ns)
        if self._handed.get(path) == version and path not in self._pending:
            return
        if complete or path.is_dir() or time.time() - stat.st_mtime >= self.settle_s:
            self._make_ready(path, version)
        elif self._pending.get(path, (-1, -1, 0.0))[:2] != version:
            self._pending[path] = (*version, time.monotonic())

    def rescan(self) -> None:
        """Look at every entry of the folder (start-up, and now and then for missed events)."""
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            log.error("cannot list folder=%s error=%r", self.folder, exc)
            return
        present = {self.folder / name for name in names}
        for gone in set(self._handed) - present:
            del self._handed[gone]
        for path in sorted(present):
            self.note(path, complete=False)

    def _make_ready(self, path: Path, version: tuple[int, int]) -> None:
        self._pending.pop(path, None)
        self._handed[path] = version
        self._ready.setdefault(path, time.monotonic())
        self._wakeup.set()

    def _settle(self) -> None:
        now = time.monotonic()
        for path, (size, mtime_ns, since) in list(self._pending.items()):
            try:
                stat = path.stat()
            except OSError:
                del self._pending[path]
                continue
            version = (stat.st_size, stat.st_mtime_ns)
            if version != (size, mtime_ns):
                self._pending[path] = (*version, now)
            elif now - since >= self.settle_s:
                self._make_ready(path, version)

    async def _tick(self) -> None:
        step_s = min(0.1, self.settle_s / 2) if self.settle_s > 0 else 0.1
        last_rescan = time.monotonic()
        while True:
            await asyncio.sleep(step_s)
            self._settle()
            if time.monotonic() - last_rescan >= self.rescan_interval_s:
                self.rescan()
                last_rescan = time.monotonic()

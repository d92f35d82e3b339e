"""Finding complete FITS frames in the watched folder, each handed out once.

Events come from `watchdog`: inotify on Linux (no polling cost, a rename is seen at once), or
its polling observer for network shares where inotify sees nothing (`polling=True`). A file
is *complete* when it was renamed into place (the safe way for a camera to write), or when its
size and modification time have not changed for `settle_s` and its FITS headers promise no more
bytes than it holds (`imaging.fits_completeness`): a camera that pauses mid-write is waited
for. A file that stays incomplete and unchanged for `incomplete_timeout_s` is handed out anyway
(a camera that died mid-write), for the reader to reject as truncated; a file that is not FITS
at all is handed out once settled, for the same reason. Directories with a FITS name are
handed out at once, so the reader can reject them. A slow full rescan catches anything the
event stream missed (an inotify queue overflow), and the start-up scan picks up files that
arrived while the agent was down; the processed-frames store then skips the ones already
settled.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
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

from imaging.file_names import printable_name
from imaging.fits_completeness import Completeness, FitsCompleteness, file_completeness

log = logging.getLogger(__name__)

FITS_SUFFIXES = (
    ".fits",
    ".fit",
    ".fts",
    ".fz",
    ".fits.gz",
    ".fit.gz",
    ".fts.gz",
    ".fits.bz2",
    ".fit.bz2",
    ".fts.bz2",
)
"""Names of frames: plain FITS, tile-compressed (`.fits.fz`, `.fz`) and whole-file gzip or
bzip2 compressed FITS. A `.gz` or `.bz2` of anything else (a log, a catalogue) is not a frame."""

INCOMPLETE_TIMEOUT_S = 60.0
"""How long a file whose FITS headers promise more bytes than it holds may stay unchanged before
it is handed out anyway, to be rejected as truncated (a camera that died mid-write). Writers
pause for seconds between parts of a frame (read out in stripes, a busy network share, a
camera PC swapping); a minute is far beyond those pauses and still reports a dead write within
about a minute."""
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0
EARLY_RETRY_MAX_FAILURES = 4
"""A file waiting for its retry is handed out at once when another file goes through (the full
disk or the refusing bus that failed it has likely recovered), unless it failed more often than
this: then it fails for reasons of its own and keeps its back-off."""
"""A frame whose processing failed (a full disk, say) is tried again after 5 s, then 10, 20 ...
up to every 5 minutes: soon after a brief fault clears, without a log storm in a long one."""


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


@dataclass
class _Pending:
    """A file seen but not handed out: its version, since when unchanged, and what its headers
    said once it settled."""

    version: tuple[int, int]
    since: float
    """`time.monotonic()` from which this version is known unchanged."""
    incomplete: FitsCompleteness | None = None
    """Set when the settled version proved incomplete; judged once per version."""


class FolderWatch:
    """Complete frames appearing in one folder, in arrival order, each path handed out once
    per version (size, mtime)."""

    def __init__(
        self,
        folder: Path,
        *,
        settle_s: float = 1.0,
        incomplete_timeout_s: float = INCOMPLETE_TIMEOUT_S,
        polling: bool = False,
        poll_interval_s: float = 1.0,
        rescan_interval_s: float = 60.0,
    ) -> None:
        self.folder = folder.absolute()
        self.settle_s = settle_s
        self.incomplete_timeout_s = incomplete_timeout_s
        self.rescan_interval_s = rescan_interval_s
        self._polling = polling
        self._poll_interval_s = poll_interval_s
        self._pending: dict[Path, _Pending] = {}
        self._ready: OrderedDict[Path, float] = OrderedDict()
        self._handed: dict[Path, tuple[int, int]] = {}
        self._wakeup = asyncio.Event()
        self._observer: BaseObserver | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._retries: dict[Path, int] = {}
        self._retry_timers: dict[Path, asyncio.TimerHandle] = {}

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
            "watching folder=%s polling=%s settle_s=%s incomplete_timeout_s=%s",
            self.folder,
            self._polling,
            self.settle_s,
            self.incomplete_timeout_s,
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
        if complete or path.is_dir():
            self._make_ready(path, version)
            return
        now = time.monotonic()
        pending = self._pending.get(path)
        if pending is None or pending.version != version:
            unchanged_s = max(0.0, time.time() - stat.st_mtime)  # e.g. found by the start-up scan
            pending = self._pending[path] = _Pending(version, now - unchanged_s)
        self._judge(path, pending, now)

    def retry(self, path: Path) -> float:
        """Hand `path` out again later: its processing failed and may succeed then (the disk
        was full, the bus refused it...). The first retry is after `RETRY_FIRST_S`, each further
        one twice as late up to `RETRY_MAX_S`; a file handed out for good (or gone) starts
        again from the first. A file gone meanwhile is not handed out. Returns the delay."""
        self._handed.pop(path, None)
        delay_s = min(RETRY_FIRST_S * 2 ** self._retries.get(path, 0), RETRY_MAX_S)
        self._retries[path] = self._retries.get(path, 0) + 1
        previous = self._retry_timers.pop(path, None)
        if previous is not None:
            previous.cancel()
        self._retry_timers[path] = asyncio.get_running_loop().call_later(
            delay_s, self._retry_now, path
        )
        return delay_s

    def succeeded(self, path: Path) -> None:
        """`path` was processed: a later failure of it retries from the shortest delay, and
        files waiting for a retry after few failures are handed out now (what failed them has
        likely passed: the first frame through after a full disk brings the others with it)."""
        self._retries.pop(path, None)
        for waiting, timer in list(self._retry_timers.items()):
            if self._retries.get(waiting, 0) <= EARLY_RETRY_MAX_FAILURES:
                timer.cancel()
                self._retry_now(waiting)

    def _retry_now(self, path: Path) -> None:
        self._retry_timers.pop(path, None)
        self.note(path, False)

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
        for gone in set(self._retries) - present:
            del self._retries[gone]
        for path in sorted(present):
            self.note(path, complete=False)

    def _make_ready(self, path: Path, version: tuple[int, int]) -> None:
        self._pending.pop(path, None)
        self._handed[path] = version
        self._ready.setdefault(path, time.monotonic())
        self._wakeup.set()

    def _judge(self, path: Path, pending: _Pending, now: float) -> None:
        """Hand the file out if it has settled and is complete, or has waited out
        `incomplete_timeout_s` incomplete; otherwise leave it pending."""
        unchanged_s = now - pending.since
        if unchanged_s < self.settle_s:
            return
        if pending.incomplete is None:
            structure = _completeness(path)
            if structure is None or structure.verdict is not Completeness.INCOMPLETE:
                self._make_ready(path, pending.version)
                return
            pending.incomplete = structure
            log.info(
                "frame still being written file=%s %s",
                printable_name(path.name),
                structure.detail,
            )
        if unchanged_s >= self.incomplete_timeout_s:
            log.warning(
                "frame incomplete, handed out to be rejected file=%s unchanged_s=%.0f %s",
                printable_name(path.name),
                unchanged_s,
                pending.incomplete.detail,
            )
            self._make_ready(path, pending.version)

    def _settle(self) -> None:
        now = time.monotonic()
        for path, pending in list(self._pending.items()):
            try:
                stat = path.stat()
            except OSError:
                del self._pending[path]
                continue
            version = (stat.st_size, stat.st_mtime_ns)
            if version != pending.version:
                self._pending[path] = _Pending(version, now)
            else:
                self._judge(path, pending, now)

    async def _tick(self) -> None:
        step_s = min(0.1, self.settle_s / 2) if self.settle_s > 0 else 0.1
        last_rescan = time.monotonic()
        while True:
            await asyncio.sleep(step_s)
            self._settle()
            if time.monotonic() - last_rescan >= self.rescan_interval_s:
                self.rescan()
                last_rescan = time.monotonic()


def _completeness(path: Path) -> FitsCompleteness | None:
    """What the file's headers say (a few KB read), or None when it cannot be read: the
    reader will say why. Only regular files are opened: opening a FIFO would block the loop."""
    try:
        if not path.is_file():
            return None
        return file_completeness(path)
    except (OSError, ValueError, ArithmeticError):  # a header beyond belief: the reader says why
        return None

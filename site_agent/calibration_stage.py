"""Calibration at the site: bias, dark and flat frames collected into masters instead of graded,
and sky frames calibrated with those masters before they are scored.

`CollectCalibration` takes a frame `ClassifyFrame` called a calibration frame into the site's
`CalibrationStore` (`work_dir/calibration/`) and out of the watched folder. It publishes
nothing: a calibration frame is neither a score nor a bad file (a `FrameRejected` would count a
dusk routine of twenty biases as twenty rejections at the centre, and quarantine them); the
log says what came in (`calibration frame collected`) and each master built (`master built`).
Masters are combined by `MasterBuilds` on a thread of their own at low priority, so the night's
first frames are scored while the dusk flats are combined. `CalibrateFrame` applies the
masters that fit a sky frame, and logs why any that exists does not fit (another size or
binning, another filter), naming both geometries; a frame whose calibration fails is scored
uncalibrated, with the error logged.
"""

import asyncio
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field

from imaging.calibration_store import CalibrationStore
from imaging.file_names import printable_name
from site_agent.pipeline import FrameWork

log = logging.getLogger(__name__)

BUILD_NICENESS = 10
"""How much nicer than scoring master building runs (Linux: per thread), as the transient
search does: a master of 25 frames of 4096x4096 takes tens of seconds of CPU."""


class MasterBuilds:
    """Builds the masters that are due on one daemon thread, one build after another; asked
    again while building, it looks again once done. A daemon, so stopping the agent never waits
    for a build: one cut off is built again when the next calibration frame arrives."""

    def __init__(self, site_id: str, store: CalibrationStore) -> None:
        self.site_id = site_id
        self.store = store
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(self) -> None:
        """Build whatever is due, in the background."""
        with self._lock:
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="calibration", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no build runs (tests, tools); returns whether it is idle."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def _serve(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)
        while True:
            with self._lock:  # a request after the last look starts no thread: this one looks
                if not self._wanted.is_set():
                    self._thread = None
                    return
                self._wanted.clear()
            try:
                built, failed = self.store.build_due()
            except Exception:  # the site goes on; tried again at the next calibration frame
                log.exception("master building failed site=%s", self.site_id)
                continue
            for why in failed:
                log.warning("master not built site=%s %s", self.site_id, why)
            for info in built:
                log.info(
                    "master built site=%s kind=%s group=%s frames=%d",
                    self.site_id,
                    info.kind.value,
                    info.group,
                    len(info.frames),
                )


@dataclass
class CollectCalibration:
    """A calibration frame goes into the store and leaves the watched folder; it is not graded
    and nothing is published for it. Masters are built in the background when enough frames
    of a group have arrived."""

    site_id: str
    store: CalibrationStore
    saturation_adu: float | None = None
    builds: MasterBuilds = field(init=False)

    def __post_init__(self) -> None:
        self.builds = MasterBuilds(self.site_id, self.store)

    async def run(self, work: FrameWork) -> None:
        frame, kind = work.frame, work.frame_class
        if frame is None or kind is None or not kind.is_calibration:
            return
        work.frame = None  # no pixels wait in memory
        name = printable_name(work.path.name)
        try:
            collected = await asyncio.to_thread(
                self.store.collect, frame, kind.kind, saturation_adu=self.saturation_adu
            )
        except OSError as exc:  # a full or read-only work disk: the frame stays and is retried
            log.error(
                "calibration frame not collected site=%s file=%s error=%r", self.site_id, name, exc
            )
            raise
        await asyncio.to_thread(_remove_original, work.path, self.site_id)
        level = logging.INFO if collected.used else logging.WARNING
        log.log(
            level,
            "calibration frame %s site=%s file=%s kind=%s evidence=%s group=%s frames_in_group=%d",
            collected.note,
            self.site_id,
            name,
            kind.kind.value,
            kind.evidence,
            collected.group,
            collected.frames_in_group,
        )
        if collected.used:
            self.builds.request()


def _remove_original(path: os.PathLike[str], site_id: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a read-only camera share: collected again (once) after a restart
        log.error(
            "calibration frame collected but left in place site=%s file=%s error=%r",
            site_id,
            printable_name(path),
            exc,
        )


@dataclass
class CalibrateFrame:
    """A sky frame with the site's masters applied (bias, dark scaled to its exposure, flat of
    its filter) before it is scored; masters that do not fit it are named in the log."""

    site_id: str
    store: CalibrationStore
    saturation_adu: float | None = None

    async def run(self, work: FrameWork) -> None:
        frame, kind = work.frame, work.frame_class
        if frame is None or work.message is not None or (kind is not None and kind.is_calibration):
            return
        name = printable_name(work.path.name)
        try:
            calibrated = await asyncio.to_thread(
                self.store.calibrate, frame, saturation_adu=self.saturation_adu
            )
        except Exception:  # a broken master must not cost the frame its score
            log.exception(
                "calibration failed, scored uncalibrated site=%s file=%s", self.site_id, name
            )
            return
        for note in calibrated.notes:
            log.info("calibration incomplete site=%s file=%s: %s", self.site_id, name, note)
        if calibrated.applied:
            work.frame = calibrated.frame
            work.calibrated = calibrated
            log.debug(
                "frame calibrated site=%s file=%s masters=%s",
                self.site_id,
                name,
                ",".join(kind.value for kind in calibrated.applied),
            )

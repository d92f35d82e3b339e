"""The follow-up executor that drives the telescope itself through ASCOM Alpaca.

For each accepted request, most urgent first (priority, then deadline): check the safety
monitor and the sky (target above the site's horizon limit, the Sun below -12°, the Moon far
enough: `site_agent.sky_constraints`), slew (unpark, track), turn the filter wheel, and expose
N x t; each exposure is written as a FITS frame (DATE-OBS, EXPTIME, FILTER, FOLLOWUP and a TAN
WCS at the mount's reported RA/Dec with the site's pixel scale) into the agent's own intake
folder, where it is scored like every other frame. Progress goes to the centre as
`FollowUpStatus` messages: observing k/N after each exposure, done once all N are written and
scored (failed when every one was graded bad), failed with the device's error or the safety
monitor's verdict, cancelled on a `FollowUpCancel` (checked between exposures; the exposure in
progress is aborted). The records are on disk (`site_agent.executor.RecordBook`): after a
restart a request under way resumes from its next exposure, or fails if its deadline passed.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from protos import (
    FleetMessage,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    FrameScore,
    QualityLabel,
    SiteConditions,
)
from protos.base import utc_now
from site_agent.alpaca_devices import DeviceError, TelescopeRig
from site_agent.conditions import ConditionsReader
from site_agent.executor import (
    FollowUpExecutor,
    FollowUpRecord,
    HandOffExecutor,
    RecordBook,
    deadline_refusal,
    followup_status,
    unknown_request,
)
from site_agent.exposure_fits import exposure_header, write_exposure
from site_agent.followups import FollowUpQueue
from site_agent.settings import AlpacaDevices, SiteAgentSettings
from site_agent.sky_constraints import SiteSky

log = logging.getLogger(__name__)

Send = Callable[[FleetMessage], Awaitable[object]]

EXPOSURE_POLL_S = 0.2
"""How often an exposure is checked for its image, a cancel or an unsafe sky."""
IDLE_WAIT_S = 5.0
"""With nothing to observe, the queue is looked at again after this (or when a command comes)."""
SKY_RETRY = timedelta(minutes=5)
"""A request whose target is not observable yet (but will be in its window) waits this long."""


class AlpacaExecutor:
    """Carries out a site's follow-ups on its Alpaca telescope. `await run()` drives the queue."""

    def __init__(
        self,
        site_id: str,
        devices: AlpacaDevices,
        sky: SiteSky,
        *,
        records_dir: Path,
        intake_dir: Path,
        pixel_scale_arcsec: float,
        send: Send,
        extra_header: dict[str, object] | None = None,
    ) -> None:
        self.site_id = site_id
        self.sky = sky
        self.rig = TelescopeRig(devices)
        self.book = RecordBook(records_dir)
        self._intake = intake_dir
        self._scale_arcsec = pixel_scale_arcsec
        self._send = send
        self._extra_header = extra_header or {}
        self._offset = timedelta(seconds=devices.sky_clock_offset_s)
        self._readout_s = devices.readout_timeout_s
        self._wake = asyncio.Event()
        self._retry_at: dict[str, datetime] = {}
        self._boot = uuid.uuid4().hex[:8]
        self._weather = ConditionsReader(site_id, devices)
        self._exposure_began = utc_now()

    def sky_now(self) -> datetime:
        """The time Sun, Moon and altitude are judged at (and frames dated)."""
        return utc_now() + self._offset

    def status(self, record: FollowUpRecord, variant: str = "") -> FollowUpStatus:
        """The record's current report."""
        return followup_status(
            self.site_id,
            record.request_id,
            record.state,
            reason=record.reason,
            done=record.exposures_done,
            total=record.total,
            frames=record.frames[-100:],
            variant=variant,
        )

    async def submit(self, request: FollowUpRequest) -> FollowUpStatus:
        rid = request.request_id
        held = self.book.get(rid)
        if held is not None:
            if held.request.message_id == request.message_id:  # redelivered: the same answer
                return self.status(held)
            log.warning(
                "duplicate follow-up request refused site=%s request_id=%s", self.site_id, rid
            )
            return followup_status(
                self.site_id,
                rid,
                held.state,
                reason=f"duplicate request id refused: the site already holds it ({held.state})",
                done=held.exposures_done,
                total=held.total,
                variant=f"duplicate-{request.message_id}",
            )
        record = FollowUpRecord(request=request, priority=request.priority)
        refusal = deadline_refusal(request) or await self._never_observable(request)
        if refusal is not None:
            record.state, record.reason = FollowUpState.FAILED, refusal
            log.warning(
                "follow-up refused site=%s request_id=%s reason=%s", self.site_id, rid, refusal
            )
        self.book.save(record)
        self._wake.set()
        return self.status(record)

    async def _never_observable(self, request: FollowUpRequest) -> str | None:
        start = max(utc_now(), request.not_before or utc_now()) + self._offset
        end = request.deadline + self._offset  # astroplan over the window: off the event loop
        return await asyncio.to_thread(self.sky.why_never_observable, request.target, start, end)

    def cancel(self, command: FollowUpCancel) -> FollowUpStatus:
        record = self.book.get(command.request_id)
        if record is None:
            log.warning(
                "cancel of an unknown follow-up site=%s request_id=%s",
                self.site_id,
                command.request_id,
            )
            return unknown_request(self.site_id, command)
        if not record.finished:  # never started again; the running exposure sees it and aborts
            record.state, record.reason = FollowUpState.CANCELLED, command.reason
            self.book.save(record)
            log.info("follow-up cancelled site=%s request_id=%s", self.site_id, record.request_id)
        return self.status(record)

    def reprioritise(self, command: FollowUpReprioritise) -> FollowUpStatus:
        record = self.book.get(command.request_id)
        if record is None:
            return unknown_request(self.site_id, command)
        if not record.finished:
            record.priority = command.priority
            self.book.save(record)
            self._wake.set()
        return self.status(record, variant=f"priority-{command.message_id}")

    def frame_scored(self, request_id: str, frame: str, score: FrameScore) -> FollowUpStatus | None:
        record = self.book.get(request_id)
        if record is None or frame not in record.frames:
            return None
        seen_before = frame in record.scored
        record.scored[frame] = score.label.value
        if record.finished:  # a frame scored again after a restart repeats the final report
            self.book.save(record)
            return self.status(record) if seen_before else None
        if record.exposures_done < record.total or len(record.scored) < record.total:
            self.book.save(record)
            return None
        bad = sum(label == QualityLabel.BAD.value for label in record.scored.values())
        if bad == record.total:
            record.state, record.reason = FollowUpState.FAILED, f"all {bad} frames graded bad"
        else:
            record.state = FollowUpState.DONE
            record.reason = f"{bad} of {record.total} frames graded bad" if bad else None
        self.book.save(record)
        return self.status(record)

    async def conditions(self) -> SiteConditions | None:
        return await asyncio.to_thread(self._weather.read)

    def reported(self, status: FollowUpStatus) -> None:
        """Records stay on disk (they answer duplicates and late cancels)."""

    async def run(self) -> None:
        """Resume or fail what a restart interrupted, then carry out the queue for ever."""
        await self._resume()
        while True:
            record = self._next()
            if record is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_WAIT_S)
                continue
            await self._observe(record)

    async def _resume(self) -> None:
        for record in list(self.book.records.values()):
            if record.finished:
                continue
            if record.request.deadline <= utc_now():
                await self._fail(record, "deadline passed while the agent was down")
            elif record.state is FollowUpState.OBSERVING:
                log.info(
                    "follow-up resumed after restart site=%s request_id=%s exposures=%d/%d",
                    self.site_id,
                    record.request_id,
                    record.exposures_done,
                    record.total,
                )
                await self._send(self.status(record, variant=f"resumed-{self._boot}"))

    def _next(self) -> FollowUpRecord | None:
        now = utc_now()
        waiting = [
            r
            for r in self.book.records.values()
            if not r.finished
            and r.exposures_done < r.total
            and (r.request.not_before is None or r.request.not_before <= now)
            and self._retry_at.get(r.request_id, now) <= now
        ]
        waiting.sort(key=lambda r: (r.priority, r.request.deadline))
        return waiting[0] if waiting else None

    async def _fail(self, record: FollowUpRecord, reason: str) -> None:
        if record.finished:  # cancelled meanwhile: that stays its answer
            return
        record.state, record.reason = FollowUpState.FAILED, reason
        self.book.save(record)
        log.warning(
            "follow-up failed site=%s request_id=%s reason=%s",
            self.site_id,
            record.request_id,
            reason,
        )
        await self._send(self.status(record))

    async def _observe(self, record: FollowUpRecord) -> None:
        """Check the sky, point, and take the remaining exposures of one request."""
        request = record.request
        if request.deadline <= utc_now():
            await self._fail(record, "deadline passed before it could be observed")
            return
        reason = await asyncio.to_thread(
            self.sky.why_not_observable, request.target, self.sky_now()
        )
        if reason is not None:
            never = await self._never_observable(request)
            if never is not None:
                await self._fail(record, never)
            else:
                self._retry_at[record.request_id] = utc_now() + SKY_RETRY
            return
        try:
            await self._expose_all(record)
        except DeviceError as exc:
            await self._fail(record, str(exc)[:256])

    async def _expose_all(self, record: FollowUpRecord) -> None:
        request = record.request
        await self._check_safe()
        await asyncio.to_thread(self.rig.slew, request.target.ra_deg, request.target.dec_deg)
        await asyncio.to_thread(self.rig.select_filter, request.plan.filter)
        if record.finished:
            return  # cancelled during the slew
        record.state = FollowUpState.OBSERVING
        self.book.save(record)
        await self._send(self.status(record))
        while record.exposures_done < record.total and not record.finished:
            pixels = await self._expose(record)
            if pixels is None:
                return
            ra_deg, dec_deg = await asyncio.to_thread(self.rig.pointing)
            await asyncio.to_thread(self._write, record, pixels, ra_deg, dec_deg)
            await self._send(self.status(record))

    async def _check_safe(self) -> None:
        if await asyncio.to_thread(self.rig.is_safe) is False:
            raise DeviceError("safety monitor reports unsafe")

    async def _expose(self, record: FollowUpRecord) -> np.ndarray | None:
        """One exposure's pixels; None when the request was cancelled (the exposure aborted)."""
        exptime_s = record.request.plan.exptime_s
        await self._check_safe()
        self._exposure_began = self.sky_now()
        await asyncio.to_thread(self.rig.start_exposure, exptime_s)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + exptime_s + self._readout_s
        while True:
            if record.finished:
                await asyncio.to_thread(self.rig.abort_exposure)
                log.info(
                    "exposure aborted site=%s request_id=%s exposure=%d/%d",
                    self.site_id,
                    record.request_id,
                    record.exposures_done + 1,
                    record.total,
                )
                return None
            if await asyncio.to_thread(self.rig.is_safe) is False:
                await asyncio.to_thread(self.rig.abort_exposure)
                raise DeviceError("safety monitor reports unsafe")
            if await asyncio.to_thread(self.rig.image_ready):
                return await asyncio.to_thread(self.rig.image)
            if loop.time() > give_up:
                raise DeviceError(
                    f"camera: no image {exptime_s + self._readout_s:.0f} s after the exposure began"
                )
            await asyncio.sleep(EXPOSURE_POLL_S)

    def _write(self, record: FollowUpRecord, pixels: np.ndarray, ra: float, dec: float) -> None:
        """Record the exposure, then put its FITS file into the intake (renamed into place, so
        the agent never sees half a file nor a frame its record does not know)."""
        request = record.request
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.request_id)
        path = self._intake / f"{self.site_id}-{safe}-{record.exposures_done + 1:03d}.fits"
        header = exposure_header(
            request, ra, dec, self._scale_arcsec, pixels.shape, self._exposure_began
        )
        for key, value in self._extra_header.items():
            header[key] = value
        record.frames.append(path.name)
        record.exposures_done += 1
        self.book.save(record)
        try:
            write_exposure(path, pixels, header)
        except OSError as exc:  # a full or read-only intake: the request fails, honestly
            record.frames.pop()
            record.exposures_done -= 1
            self.book.save(record)
            raise DeviceError(f"cannot write exposure {path.name}: {exc}") from exc
        log.info(
            "follow-up exposure written site=%s request_id=%s exposure=%d/%d file=%s",
            self.site_id,
            request.request_id,
            record.exposures_done,
            record.total,
            path.name,
        )


def build_executor(settings: SiteAgentSettings, send: Send) -> FollowUpExecutor:
    """The site's executor: the Alpaca one when the settings name devices (they need the site's
    location and pixel scale), else the JSON hand-off to the observatory's scheduler."""
    devices = settings.alpaca
    if devices is None:
        return HandOffExecutor(settings.site_id, FollowUpQueue(settings.followup_dir))
    scale = settings.pixel_scale_arcsec or (
        settings.camera.pixel_scale_arcsec if settings.camera else None
    )
    assert settings.location is not None and scale is not None  # the settings' validator
    sky = SiteSky(
        settings.location,
        settings.horizon_limit_deg,
        max_sun_altitude_deg=devices.max_sun_altitude_deg,
        min_moon_separation_deg=devices.min_moon_separation_deg,
    )
    header: dict[str, object] = {"OBSERVAT": settings.site_id}
    if settings.saturation_adu is not None:
        header["SATURATE"] = settings.saturation_adu
    if settings.camera is not None:
        header["GAIN"] = settings.camera.gain_e_per_adu
    return AlpacaExecutor(
        settings.site_id,
        devices,
        sky,
        records_dir=settings.followup_records_dir,
        intake_dir=settings.watch_dir,
        pixel_scale_arcsec=scale,
        send=send,
        extra_header=header,
    )

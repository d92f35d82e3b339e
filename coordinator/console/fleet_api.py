"""The fleet page's API: the fleet summary, the site models, the day/night terminator for the
map, and the summary live as server-sent events (`/api/events`)."""

import asyncio
from collections.abc import AsyncIterator, Callable
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from coordinator.console.access import Access
from coordinator.console.sky_times import terminator
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.summary import fleet_summary
from coordinator.views import FleetSummary, ModelVersionView, Terminator
from protos.base import utc_now

EVENT_POLL_S = 0.25
"""How often the event stream looks for a changed summary (seconds)."""
KEEPALIVE_S = 15.0
"""Quiet seconds before the stream sends a comment, and between checks that the reader may
still read."""


def summary_events(
    engine: Engine, settings: CoordinatorSettings, still_allowed: Callable[[], bool]
) -> AsyncIterator[str]:
    """Server-sent events: the fleet summary each time it changes (polled every 0.25 s). The
    stream ends when `still_allowed()` (asked every `KEEPALIVE_S`) says the client may no
    longer read: logged out, session expired, user revoked."""

    async def stream() -> AsyncIterator[str]:
        last, quiet_s, unchecked_s = "", 0.0, 0.0
        while True:
            summary = await asyncio.to_thread(fleet_summary, engine, settings)
            body = summary.model_dump_json(exclude={"generated_at"})
            if body != last:
                last, quiet_s = body, 0.0
                yield f"event: summary\ndata: {summary.model_dump_json()}\n\n"
            elif quiet_s >= KEEPALIVE_S:
                quiet_s = 0.0
                yield ": keep-alive\n\n"
            if unchecked_s >= KEEPALIVE_S:
                unchecked_s = 0.0
                if not await asyncio.to_thread(still_allowed):
                    return
            await asyncio.sleep(EVENT_POLL_S)
            quiet_s += EVENT_POLL_S
            unchecked_s += EVENT_POLL_S

    return stream()


def fleet_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """The fleet's views, for every console reader."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.reader)])

    @api.get("/summary")
    def summary() -> FleetSummary:
        return fleet_summary(engine, settings)

    @api.get("/models")
    def models() -> list[ModelVersionView]:
        with engine.connect() as conn:
            return reads.model_versions(conn)

    @api.get("/terminator")
    def day_night() -> Terminator:
        return terminator(utc_now())

    @api.get("/events")
    def events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            summary_events(engine, settings, partial(access.may_read, request)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return api

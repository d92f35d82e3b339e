"""The console's web app: the page, the read-only JSON API and live events, with the login
(`login_api`) and the operator actions (`actions_api`) beside them."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from coordinator.console.access import Access
from coordinator.console.actions_api import action_api
from coordinator.console.login_api import login_api
from coordinator.console.pages import STATIC_DIR, page_router
from coordinator.quality import quality_bins
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.summary import fleet_summary
from coordinator.views import (
    CutoutView,
    FleetSummary,
    FollowUpView,
    ModelVersionView,
    QualityBin,
    TargetDetail,
    TargetView,
)
from protos.base import utc_now

EVENT_POLL_S = 0.25
KEEPALIVE_S = 15.0


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


def read_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """Views every console user may see (and loopback clients, with `loopback_reads`)."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.reader)])

    @api.get("/summary")
    def summary() -> FleetSummary:
        return fleet_summary(engine, settings)

    @api.get("/sites/{site_id}/quality")
    def site_quality(
        site_id: str,
        hours: float = Query(24.0, gt=0, le=24 * 30),
        bin_s: float = Query(600.0, ge=10),
    ) -> list[QualityBin]:
        since = utc_now() - timedelta(hours=hours)
        with engine.connect() as conn:
            rows = reads.quality_series(conn, site_id, since)
        return quality_bins(
            [r.scored_at for r in rows],
            [r.label for r in rows],
            [r.fwhm_arcsec for r in rows],
            [r.background_adu for r in rows],
            [r.transparency for r in rows],
            start=since,
            bin_s=bin_s,
        )

    @api.get("/targets")
    def targets() -> list[TargetView]:
        with engine.connect() as conn:
            return reads.target_views(conn)

    @api.get("/targets/{target_id}")
    def target(target_id: int) -> TargetDetail:
        with engine.connect() as conn:
            view = reads.target_view(conn, target_id)
            if view is None:
                raise HTTPException(404, f"no target {target_id}")
            return TargetDetail(**view.model_dump(), detections=reads.detections(conn, target_id))

    @api.get("/cutouts/{message_id}")
    def cutout(message_id: str) -> CutoutView:
        with engine.connect() as conn:
            view = reads.cutout(conn, message_id)
        if view is None:
            raise HTTPException(404, f"no detection {message_id}")
        return view

    @api.get("/followups")
    def followups() -> list[FollowUpView]:
        with engine.connect() as conn:
            return reads.followup_views(conn)

    @api.get("/models")
    def models() -> list[ModelVersionView]:
        with engine.connect() as conn:
            return reads.model_versions(conn)

    @api.get("/events")
    def events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            summary_events(engine, settings, partial(access.may_read, request)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return api


def create_console(engine: Engine, settings: CoordinatorSettings) -> FastAPI:
    """The ops console app over a coordinator store. The page and its script are open to
    everyone (they hold no data: the page shows the login form); the API follows `Access`."""
    access = Access(engine, settings)
    app = FastAPI(
        title="Skyfleet ops console", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.include_router(login_api(engine, settings, access))
    app.include_router(read_api(engine, settings, access))
    app.include_router(action_api(engine, access))
    app.include_router(page_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

"""The console's web app: the page, the read-only JSON API, live events and operator actions."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from coordinator.console.access import Access
from coordinator.quality import quality_bins
from coordinator.settings import CoordinatorSettings
from coordinator.store import actions, reads
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

STATIC_DIR = Path(__file__).parent / "static"
EVENT_POLL_S = 0.25
KEEPALIVE_S = 15.0


class PriorityChange(BaseModel):
    priority: int = Field(ge=1, le=10, description="1 is the most urgent.")


class TargetMark(BaseModel):
    mark: str | None = Field(default=None, max_length=32)


def summary_events(engine: Engine, settings: CoordinatorSettings) -> AsyncIterator[str]:
    """Server-sent events: the fleet summary each time it changes (polled every 0.25 s)."""

    async def stream() -> AsyncIterator[str]:
        last, quiet_s = "", 0.0
        while True:
            summary = await asyncio.to_thread(fleet_summary, engine, settings)
            body = summary.model_dump_json(exclude={"generated_at"})
            if body != last:
                last, quiet_s = body, 0.0
                yield f"event: summary\ndata: {summary.model_dump_json()}\n\n"
            elif quiet_s >= KEEPALIVE_S:
                quiet_s = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL_S)
            quiet_s += EVENT_POLL_S

    return stream()


def read_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """Views anyone on loopback (or with the token) may see."""
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
    def events() -> StreamingResponse:
        return StreamingResponse(
            summary_events(engine, settings),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return api


def action_api(engine: Engine, access: Access) -> APIRouter:
    """Operator actions: each needs the token."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.actor)])

    @api.post("/targets/{target_id}/priority")
    def reprioritise(target_id: int, change: PriorityChange) -> dict[str, object]:
        with engine.begin() as conn:
            if not actions.set_priority(conn, target_id, change.priority):
                raise HTTPException(404, f"no target {target_id}")
        return {"target_id": target_id, "priority": change.priority}

    @api.post("/targets/{target_id}/mark")
    def mark(target_id: int, change: TargetMark) -> dict[str, object]:
        with engine.begin() as conn:
            if not actions.mark_target(conn, target_id, change.mark):
                raise HTTPException(404, f"no target {target_id}")
        return {"target_id": target_id, "mark": change.mark}

    @api.post("/followups/{request_id}/cancel")
    def cancel(request_id: str) -> dict[str, object]:
        with engine.begin() as conn:
            if not actions.cancel_followup(conn, request_id, utc_now()):
                raise HTTPException(409, f"follow-up {request_id} is not active")
        return {"request_id": request_id, "state": "cancelled"}

    return api


def create_console(engine: Engine, settings: CoordinatorSettings) -> FastAPI:
    """The ops console app over a coordinator store."""
    access = Access(settings.action_token)
    app = FastAPI(
        title="Skyfleet ops console", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.include_router(read_api(engine, settings, access))
    app.include_router(action_api(engine, access))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False, dependencies=[Depends(access.reader)])
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app

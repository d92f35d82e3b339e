"""The console's web app: the pages and the JSON API, each view's routes in its own module
(`fleet_api` with the live events, `site_api`, `night_api`, `candidates_api`, `sources_api`,
`followups_api`), with the login (`login_api`), the operator actions (`actions_api`) and the
Prometheus metrics (`metrics_api`)."""

from collections import Counter

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from coordinator.console.access import Access
from coordinator.console.actions_api import action_api
from coordinator.console.candidates_api import candidates_api
from coordinator.console.fleet_api import fleet_api
from coordinator.console.followups_api import followups_api
from coordinator.console.frame_labels_api import frame_labels_api
from coordinator.console.login_api import login_api
from coordinator.console.metrics_api import metrics_api
from coordinator.console.night_api import night_api
from coordinator.console.pages import STATIC_DIR, page_router
from coordinator.console.site_api import site_api
from coordinator.console.sources_api import sources_api
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.views import TargetDetail, TargetView


def read_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """Views every console user may see (and loopback clients, with `loopback_reads`)."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.reader)])

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

    return api


def create_console(
    engine: Engine, settings: CoordinatorSettings, counts: Counter[str] | None = None
) -> FastAPI:
    """The ops console app over a coordinator store. The page and its script are open to
    everyone (they hold no data: the page shows the login form); the API follows `Access`.
    `counts` are the running coordinator's ingest counts, served at `/metrics`."""
    access = Access(engine, settings)
    app = FastAPI(
        title="Skyfleet ops console", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.include_router(login_api(engine, settings, access))
    app.include_router(read_api(engine, settings, access))
    app.include_router(fleet_api(engine, settings, access))
    app.include_router(site_api(engine, settings, access))
    app.include_router(night_api(engine, access))
    app.include_router(action_api(engine, access))
    app.include_router(candidates_api(engine, access))
    app.include_router(frame_labels_api(engine, access))
    app.include_router(sources_api(engine, access))
    app.include_router(followups_api(engine, settings, access))
    app.include_router(metrics_api(Counter() if counts is None else counts, access))
    app.include_router(page_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

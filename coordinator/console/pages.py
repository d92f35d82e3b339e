"""The console's pages: one shareable URL per view, each a static HTML page that draws itself
from the JSON API (`/api/...`) with its own script and the shared `common.js`, and the bundled
Plotly (served from the installed `plotly` package, never from a CDN: observatories are often
offline)."""

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).parent / "static"
PAGES_DIR = STATIC_DIR / "pages"
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
"""Plotly's own bundled build, the version the installed `plotly` package pins."""
PLOTLY_CACHE_S = 24 * 3600
"""How long a browser may keep the 4.8 MB Plotly bundle: it changes only with the package."""

PAGE_ROUTES: dict[str, str] = {
    "/": "fleet.html",
    "/sites/{site_id}": "site.html",
    "/night": "night.html",
    "/candidates": "candidates.html",
    "/sources/{target_id}": "source.html",
    "/followups": "followups.html",
}
"""Each route and the page that answers it (ids in the path are read by the page's script)."""


def page_router() -> APIRouter:
    """The pages, open to everyone: they hold no data (the API behind them follows `Access`)."""
    router = APIRouter(include_in_schema=False)
    for route, page in PAGE_ROUTES.items():
        router.add_api_route(route, _page_answer(PAGES_DIR / page), methods=["GET"])

    @router.get("/static/vendor/plotly.min.js")
    def plotly() -> FileResponse:
        return FileResponse(
            PLOTLY_JS,
            media_type="text/javascript",
            headers={"Cache-Control": f"public, max-age={PLOTLY_CACHE_S}"},
        )

    return router


def _page_answer(path: Path) -> Callable[[], FileResponse]:
    def answer() -> FileResponse:
        return FileResponse(path, media_type="text/html")

    return answer

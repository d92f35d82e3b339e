"""The site page's API: one site (status, link, weather, model, its night's Sun and Moon), its
frames page by page with filters (each with the operator's label that counts, if any), its
metrics against time, binned quality, and each frame's thumbnail. An unknown site or frame is a
404 naming it; a malformed query parameter a 422 naming the parameter."""

import base64
import binascii
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import AwareDatetime
from sqlalchemy import Connection, Engine

from coordinator.console.access import Access
from coordinator.console.sky_times import night_sky, night_window
from coordinator.quality import quality_bins
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.store.frame_labels import FrameLabelView, labels_of_scores
from coordinator.summary import site_views
from coordinator.views import FramePage, FrameView, MetricSeries, QualityBin, SiteDetail
from protos.base import utc_now
from protos.frames import Reason

PAGE_SIZE_MAX = 500
"""Most frames one page may ask for: a bounded answer whatever the query says."""
SERIES_POINTS_MAX = 5000
"""Most frames a metrics series carries (the latest ones): a plot stays quick to draw."""
THUMBNAIL_CACHE_S = 24 * 3600
"""How long a browser may keep a frame's thumbnail (seconds): it never changes."""
SITE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
"""What a site id may look like in a URL (the store keeps at most 32 characters)."""

SiteId = Annotated[str, Path(pattern=SITE_ID_PATTERN, description="The site's id.")]
Label = Literal["good", "medium", "bad"]


class LabelledFrame(FrameView):
    """A frame in the site page's browser, with an operator's label on it (the latest)."""

    operator_label: FrameLabelView | None = None


class LabelledFramePage(FramePage):
    """One page of a site's frames, each with its operator's label."""

    frames: list[LabelledFrame]  # type: ignore[assignment]


def labelled(conn: Connection, page: FramePage) -> LabelledFramePage:
    """The page with each frame's operator label (the latest), where it has one."""
    operator = labels_of_scores(conn, (f.message_id for f in page.frames))
    frames = [
        LabelledFrame(**f.model_dump(), operator_label=operator.get(f.message_id))
        for f in page.frames
    ]
    return LabelledFramePage(**page.model_dump(exclude={"frames"}), frames=frames)


def known_site(conn: Connection, site_id: str) -> dict[str, Any]:
    """The site's record, or a 404 that names it."""
    record = reads.site_record(conn, site_id)
    if record is None:
        raise HTTPException(404, f"no site {site_id!r}: it has sent no configuration or frame")
    return record


def site_detail(
    conn: Connection, settings: CoordinatorSettings, site_id: str, now: datetime
) -> SiteDetail:
    """A site's page header: its summary line, link, weather and its night so far."""
    record = known_site(conn, site_id)
    view = next(v for v in site_views(conn, settings, now) if v.site_id == site_id)
    lat, lon = record["lat_deg"], record["lon_deg"]
    night = None if lat is None or lon is None else night_sky(lat, lon, record["height_m"], now)
    return SiteDetail(
        **view.model_dump(),
        height_m=record["height_m"],
        horizon_limit_deg=record["horizon_limit_deg"],
        link_state=record["link_state"],
        conditions=record["conditions"],
        night=night,
    )


def site_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """A site's views, for every console reader."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.reader)])

    @api.get("/sites/{site_id}")
    def site(site_id: SiteId) -> SiteDetail:
        with engine.connect() as conn:
            return site_detail(conn, settings, site_id, utc_now())

    @api.get("/sites/{site_id}/frames")
    def frames(
        site_id: SiteId,
        label: Label | None = None,
        reason: Reason | None = None,
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = 50,
    ) -> LabelledFramePage:
        with engine.connect() as conn:
            known_site(conn, site_id)
            page = reads.frame_page(
                conn,
                site_id,
                label=label,
                reason=reason,
                since=since,
                until=until,
                offset=offset,
                limit=limit,
            )
            return labelled(conn, page)

    @api.get("/sites/{site_id}/metrics")
    def metrics(
        site_id: SiteId, since: AwareDatetime | None = None, until: AwareDatetime | None = None
    ) -> MetricSeries:
        """Frame metrics from `since` to `until` (default: the site's night so far)."""
        now = utc_now()
        with engine.connect() as conn:
            start, end = night_window(known_site(conn, site_id)["lon_deg"], now)
            return reads.metric_series(
                conn, site_id, since or start, until or end, SERIES_POINTS_MAX
            )

    @api.get("/sites/{site_id}/quality")
    def site_quality(
        site_id: SiteId,
        hours: Annotated[float, Query(gt=0, le=24 * 30)] = 24.0,
        bin_s: Annotated[float, Query(ge=10)] = 600.0,
    ) -> list[QualityBin]:
        since = utc_now() - timedelta(hours=hours)
        with engine.connect() as conn:
            known_site(conn, site_id)
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

    @api.get("/frames/{message_id}/thumbnail.png")
    def thumbnail(message_id: Annotated[str, Path(max_length=80)]) -> Response:
        with engine.connect() as conn:
            encoded = reads.frame_thumbnail(conn, message_id)
        if encoded is None:
            raise HTTPException(404, f"no thumbnail for frame {message_id!r}")
        try:
            png = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise HTTPException(404, f"frame {message_id!r} has no readable thumbnail") from error
        return Response(
            png, media_type="image/png", headers={"Cache-Control": f"max-age={THUMBNAIL_CACHE_S}"}
        )

    return api

"""Read queries behind the fleet summary and the console; rows in, view models out."""

import base64
import zlib
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, Row, case, func, select

from coordinator.store.tables import (
    CandidateRow,
    FollowUp,
    FrameRejectionRow,
    FrameScoreRow,
    FrameSearchRow,
    Site,
    Target,
    table_of,
)
from coordinator.views import (
    CutoutView,
    DetectionView,
    FollowUpView,
    FramePage,
    FrameSearchView,
    FrameView,
    MetricSeries,
    ModelVersionView,
    TargetView,
)

scores = table_of(FrameScoreRow)
sites = table_of(Site)
targets = table_of(Target)
candidates = table_of(CandidateRow)
followups = table_of(FollowUp)
searches = table_of(FrameSearchRow)


def site_records(conn: Connection) -> list[dict[str, Any]]:
    """Every site that sent a configuration, a heartbeat or a frame score, by site id."""
    known = {r.site_id: r._asdict() for r in conn.execute(select(sites)).all()}
    for site_id in conn.execute(select(scores.c.site_id).distinct()).scalars():
        known.setdefault(site_id, {c.name: None for c in sites.c} | {"site_id": site_id})
    return [known[k] for k in sorted(known)]


def quality_by_site(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per site: frame counts by class and mean seeing, background and transparency."""
    rows = conn.execute(
        select(
            scores.c.site_id,
            func.count().label("frames"),
            func.sum(case((scores.c.label == "good", 1), else_=0)).label("good"),
            func.sum(case((scores.c.label == "medium", 1), else_=0)).label("medium"),
            func.sum(case((scores.c.label == "bad", 1), else_=0)).label("bad"),
            func.avg(scores.c.fwhm_arcsec).label("mean_fwhm_arcsec"),
            func.avg(scores.c.background_adu).label("mean_background_adu"),
            func.avg(scores.c.transparency).label("mean_transparency"),
        ).group_by(scores.c.site_id)
    ).all()
    return {r.site_id: r._asdict() for r in rows}


def frames_since_by_site(conn: Connection, since: datetime) -> dict[str, int]:
    """Frames scored per site since a time."""
    rows = conn.execute(
        select(scores.c.site_id, func.count())
        .where(scores.c.scored_at >= since)
        .group_by(scores.c.site_id)
    ).all()
    return {site_id: int(n) for site_id, n in rows}


def rejections_by_site(conn: Connection) -> dict[str, int]:
    """Rejected files per site."""
    table = table_of(FrameRejectionRow)
    rows = conn.execute(select(table.c.site_id, func.count()).group_by(table.c.site_id)).all()
    return {site_id: int(n) for site_id, n in rows}


def searches_by_site(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per site: (frames searched for transients, frames whose search was skipped)."""
    rows = conn.execute(
        select(
            searches.c.site_id,
            func.sum(case((searches.c.attempted, 1), else_=0)),
            func.sum(case((searches.c.attempted, 0), else_=1)),
        ).group_by(searches.c.site_id)
    ).all()
    return {site_id: (int(searched), int(skipped)) for site_id, searched, skipped in rows}


def frame_searches(conn: Connection, frame_sha256: str) -> list[FrameSearchView]:
    """A frame's transient-search records (one per site that reported on it), oldest first."""
    rows = conn.execute(
        select(searches)
        .where(searches.c.frame_sha256 == frame_sha256)
        .order_by(searches.c.searched_at, searches.c.site_id)
    ).all()
    return [FrameSearchView(**r._asdict()) for r in rows]


def recent_labels(conn: Connection, site_id: str, limit: int) -> list[str]:
    """The labels of a site's latest frames, newest first."""
    return list(
        conn.execute(
            select(scores.c.label)
            .where(scores.c.site_id == site_id)
            .order_by(scores.c.scored_at.desc())
            .limit(limit)
        ).scalars()
    )


QUALITY_COLUMNS = (
    scores.c.scored_at,
    scores.c.label,
    scores.c.fwhm_arcsec,
    scores.c.background_adu,
    scores.c.transparency,
)
QualityRow = Row[datetime, str, float | None, float, float | None]
"""Time, label, seeing (arcsec), background (ADU), transparency: `QUALITY_COLUMNS` of a frame."""


def quality_series(conn: Connection, site_id: str, since: datetime) -> list[QualityRow]:
    """A site's frames since a time, oldest first: time, label, seeing, background, transparency."""
    return list(
        conn.execute(
            select(*QUALITY_COLUMNS)
            .where(scores.c.site_id == site_id, scores.c.scored_at >= since)
            .order_by(scores.c.scored_at)
        ).all()
    )


def target_views(conn: Connection, limit: int = 200) -> list[TargetView]:
    """Targets, most confident and most recent first."""
    rows = conn.execute(
        select(targets)
        .order_by(targets.c.confidence.desc(), targets.c.last_seen.desc())
        .limit(limit)
    ).all()
    sites_of = _sites_of_targets(conn, [r.target_id for r in rows])
    return [TargetView(**r._asdict(), sites=sites_of.get(r.target_id, [])) for r in rows]


def target_view(conn: Connection, target_id: int) -> TargetView | None:
    """One target, or None."""
    row = conn.execute(select(targets).where(targets.c.target_id == target_id)).one_or_none()
    if row is None:
        return None
    return TargetView(
        **row._asdict(), sites=_sites_of_targets(conn, [target_id]).get(target_id, [])
    )


def _sites_of_targets(conn: Connection, target_ids: list[int]) -> dict[int, list[str]]:
    pairs = conn.execute(
        select(candidates.c.target_id, candidates.c.site_id)
        .where(candidates.c.target_id.in_(target_ids))
        .distinct()
    ).all()
    out: dict[int, list[str]] = {}
    for target_id, site_id in pairs:
        out.setdefault(target_id, []).append(site_id)
    return {k: sorted(v) for k, v in out.items()}


def detections(conn: Connection, target_id: int) -> list[DetectionView]:
    """A target's detections in time order (its light curve)."""
    rows = conn.execute(
        select(
            candidates.c.message_id,
            candidates.c.site_id,
            candidates.c.observed_at,
            candidates.c.flux_adu,
            candidates.c.flux_err_adu,
            candidates.c.mag,
            candidates.c.mag_err,
            candidates.c.snr,
            candidates.c.real_bogus,
            candidates.c.filter,
        )
        .where(candidates.c.target_id == target_id)
        .order_by(candidates.c.observed_at)
    ).all()
    return [DetectionView(**r._asdict()) for r in rows]


def cutout(conn: Connection, message_id: str) -> CutoutView | None:
    """The stamps of one detection, decoded to pixel rows."""
    stored = conn.execute(
        select(candidates.c.cutouts).where(candidates.c.message_id == message_id)
    ).scalar_one_or_none()
    if stored is None:
        return None
    return CutoutView(
        message_id=message_id, **{k: _pixels(stored[k]) for k in ("new", "reference", "difference")}
    )


def _pixels(encoded: dict[str, Any]) -> list[list[float]]:
    raw = zlib.decompress(base64.b64decode(encoded["data"]))
    image = np.frombuffer(raw, dtype="<f4").reshape(encoded["shape"])
    pixels: list[list[float]] = np.nan_to_num(image).astype(float).tolist()
    return pixels


def followup_views(conn: Connection, states: list[str] | None = None) -> list[FollowUpView]:
    """Follow-up requests, newest first, optionally only in some states."""
    query = (
        select(followups, targets.c.name.label("target_name"))
        .join(targets, targets.c.target_id == followups.c.target_id)
        .order_by(followups.c.sent_at.desc())
    )
    if states is not None:
        query = query.where(followups.c.state.in_(states))
    return [FollowUpView(**r._asdict()) for r in conn.execute(query).all()]


def followup_state(conn: Connection, request_id: str) -> str | None:
    """The state of one follow-up request, or None if there is no such request."""
    state: str | None = conn.execute(
        select(followups.c.state).where(followups.c.request_id == request_id)
    ).scalar()
    return state


def followup_counts(conn: Connection) -> dict[str, int]:
    """Follow-up requests per state."""
    rows = conn.execute(select(followups.c.state, func.count()).group_by(followups.c.state)).all()
    return {state: int(n) for state, n in rows}


def targets_by_status(conn: Connection, *, followed_only: bool = False) -> dict[str, int]:
    """Targets per status (candidate, source, tracklet, rejected); with `followed_only`, only
    those that a follow-up was requested for."""
    query = select(targets.c.status, func.count()).group_by(targets.c.status)
    if followed_only:
        followed = select(followups.c.target_id).distinct().scalar_subquery()
        query = query.where(targets.c.target_id.in_(followed))
    return {status: int(n) for status, n in conn.execute(query).all()}


def candidate_count(conn: Connection) -> int:
    """Candidates the sites have reported."""
    return int(conn.execute(select(func.count()).select_from(candidates)).scalar_one())


def target_counts(conn: Connection, min_confidence: float) -> tuple[int, int, int]:
    """(all targets, targets at or above the follow-up confidence, targets seen by 2+ sites)."""
    total = conn.execute(select(func.count()).select_from(targets)).scalar_one()
    confident = conn.execute(
        select(func.count()).where(targets.c.confidence >= min_confidence)
    ).scalar_one()
    multi_site = conn.execute(select(func.count()).where(targets.c.n_sites >= 2)).scalar_one()
    return int(total), int(confident), int(multi_site)


def model_versions(conn: Connection) -> list[ModelVersionView]:
    """Per site: the model version its heartbeat reports and the one its latest score names."""
    out = []
    for site in site_records(conn):
        latest = conn.execute(
            select(scores.c.model_name, scores.c.model_version)
            .where(scores.c.site_id == site["site_id"])
            .order_by(scores.c.scored_at.desc())
            .limit(1)
        ).one_or_none()
        out.append(
            ModelVersionView(
                site_id=site["site_id"],
                heartbeat_model_version=site["model_version"],
                scoring_model=f"{latest.model_name} v{latest.model_version}" if latest else None,
            )
        )
    return out


def site_record(conn: Connection, site_id: str) -> dict[str, Any] | None:
    """One site as `site_records` gives it, or None when the store has never heard of it."""
    row = conn.execute(select(sites).where(sites.c.site_id == site_id)).one_or_none()
    if row is not None:
        return row._asdict()
    scored = conn.execute(select(scores.c.site_id).where(scores.c.site_id == site_id).limit(1))
    if scored.first() is None:
        return None
    return {c.name: None for c in sites.c} | {"site_id": site_id}


def _frame_filters(
    site_id: str,
    label: str | None,
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    where = [scores.c.site_id == site_id]
    if label is not None:
        where.append(scores.c.label == label)
    if reason is not None:
        # reasons are stored comma-separated: match a whole name, not a part of one
        padded = "," + scores.c.reasons + ","
        where.append(padded.contains(f",{reason},"))
    if since is not None:
        where.append(scores.c.scored_at >= since)
    if until is not None:
        where.append(scores.c.scored_at < until)
    return where


def frame_page(
    conn: Connection,
    site_id: str,
    *,
    label: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> FramePage:
    """A site's frames matching the filters, newest first, one page of them."""
    where = _frame_filters(site_id, label, reason, since, until)
    total = conn.execute(select(func.count()).select_from(scores).where(*where)).scalar_one()
    rows = conn.execute(
        select(
            *(c for c in scores.c if c.name != "thumbnail_png_b64"),
            scores.c.thumbnail_png_b64.is_not(None).label("has_thumbnail"),
        )
        .where(*where)
        .order_by(scores.c.scored_at.desc(), scores.c.message_id)
        .offset(offset)
        .limit(limit)
    ).all()
    frames = [
        FrameView(
            **{k: v for k, v in r._asdict().items() if k in FrameView.model_fields}
            | {"reasons": [name for name in r.reasons.split(",") if name]},
            model=f"{r.model_name} v{r.model_version}",
        )
        for r in rows
    ]
    return FramePage(total=int(total), offset=offset, limit=limit, frames=frames)


def metric_series(
    conn: Connection, site_id: str, since: datetime, until: datetime, max_points: int
) -> MetricSeries:
    """A site's frame metrics between two times as columns, oldest first; only the latest
    `max_points` frames when there are more."""
    rows = conn.execute(
        select(*QUALITY_COLUMNS)
        .where(*_frame_filters(site_id, None, None, since, until))
        .order_by(scores.c.scored_at.desc())
        .limit(max_points + 1)
    ).all()
    kept = rows[:max_points][::-1]
    return MetricSeries(
        times=[r.scored_at for r in kept],
        labels=[r.label for r in kept],
        fwhm_arcsec=[r.fwhm_arcsec for r in kept],
        background_adu=[r.background_adu for r in kept],
        transparency=[r.transparency for r in kept],
        truncated=len(rows) > max_points,
    )


def frame_thumbnail(conn: Connection, message_id: str) -> str | None:
    """A frame's thumbnail (base64 PNG), or None when there is no such frame or thumbnail."""
    thumbnail: str | None = conn.execute(
        select(scores.c.thumbnail_png_b64).where(scores.c.message_id == message_id)
    ).scalar_one_or_none()
    return thumbnail

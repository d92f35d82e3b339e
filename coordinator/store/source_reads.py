"""Read queries behind the candidate scanning, source and follow-up pages; rows in, view models
out (`coordinator.source_views`)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, Select, func, or_, select

from coordinator.source_views import (
    CandidatePage,
    CandidateView,
    FollowUpDetail,
    FollowUpPage,
    FollowUpStatusView,
    LabelledDetection,
    NearbySource,
    SourceDetail,
    UpperLimit,
)
from coordinator.store import reads
from coordinator.store.comments import comments_on
from coordinator.store.tables import (
    CandidateLabel,
    CandidateRow,
    FollowUp,
    FollowUpStatusRow,
    FrameSearchRow,
    Target,
    TargetStatus,
    table_of,
)
from protos.transients import SEARCHED_RADIUS_MAX_DEG

targets = table_of(Target)
candidates = table_of(CandidateRow)
labels = table_of(CandidateLabel)
followups = table_of(FollowUp)
statuses = table_of(FollowUpStatusRow)
searches = table_of(FrameSearchRow)

NEARBY_RADIUS_ARCSEC = 60.0
"""Known sources within this of a candidate are shown beside it: a minute of arc is a few
seeing discs past the 2 arcsec fusion radius, near enough to be the same galaxy or blend."""
ASTROMETRIC_FLOOR_ARCSEC = 0.1
"""The smallest position error of one detection (WCS fit residuals of a plate solution)."""
CENTROID_SEEING_ARCSEC = 1.5
"""Typical seeing FWHM; one detection's centroid error is about this over its S/N."""
ARCSEC_PER_DEG = 3600.0


@dataclass(frozen=True)
class CandidateFilter:
    """Which candidates to list: site, observed time window, real/bogus range, one page."""

    site_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_real_bogus: float = 0.0
    max_real_bogus: float = 1.0
    offset: int = 0
    limit: int = 50


def _candidate_query(chosen: CandidateFilter) -> Select[Any]:
    conditions = [
        targets.c.status == TargetStatus.CANDIDATE.value,
        candidates.c.real_bogus >= chosen.min_real_bogus,
        candidates.c.real_bogus <= chosen.max_real_bogus,
    ]
    if chosen.site_id is not None:
        conditions.append(candidates.c.site_id == chosen.site_id)
    if chosen.since is not None:
        conditions.append(candidates.c.observed_at >= chosen.since)
    if chosen.until is not None:
        conditions.append(candidates.c.observed_at <= chosen.until)
    return (
        select(func.count())
        .select_from(candidates.join(targets, targets.c.target_id == candidates.c.target_id))
        .where(*conditions)
    )


def candidate_page(conn: Connection, chosen: CandidateFilter) -> CandidatePage:
    """Detections of targets that are still candidates, newest first, one page of them."""
    counted = _candidate_query(chosen)
    total = int(conn.execute(counted).scalar_one())
    rows = conn.execute(
        counted.with_only_columns(
            candidates.c.message_id,
            candidates.c.target_id,
            targets.c.name.label("target_name"),
            candidates.c.site_id,
            candidates.c.observed_at,
            candidates.c.ra_deg,
            candidates.c.dec_deg,
            candidates.c.mag,
            candidates.c.mag_err,
            candidates.c.filter,
            candidates.c.snr,
            candidates.c.real_bogus,
            labels.c.label,
        )
        .outerjoin(labels, labels.c.message_id == candidates.c.message_id)
        .order_by(candidates.c.observed_at.desc(), candidates.c.message_id)
        .offset(chosen.offset)
        .limit(chosen.limit)
    ).all()
    near = nearby_sources(conn, [(r.ra_deg, r.dec_deg) for r in rows])
    items = [CandidateView(**r._asdict(), nearby=n) for r, n in zip(rows, near, strict=True)]
    return CandidatePage(total=total, offset=chosen.offset, limit=chosen.limit, items=items)


def nearby_sources(
    conn: Connection, positions: list[tuple[float, float]]
) -> list[list[NearbySource]]:
    """For each position, the sources and tracklets within `NEARBY_RADIUS_ARCSEC`, nearest first:
    one query for those in the positions' declination bands (index ranges of
    `ix_targets_status_dec`), then the exact angular test."""
    radius_deg = NEARBY_RADIUS_ARCSEC / ARCSEC_PER_DEG
    bands = _merged([(dec - radius_deg, dec + radius_deg) for _, dec in positions])
    if not bands:
        return []
    known = conn.execute(
        select(targets.c.target_id, targets.c.name, targets.c.status, targets.c.ra_deg,
               targets.c.dec_deg)
        .where(
            targets.c.status.in_([TargetStatus.SOURCE.value, TargetStatus.TRACKLET.value]),
            or_(*[targets.c.dec_deg.between(low, high) for low, high in bands]),
        )
    ).all()  # fmt: skip
    ras, decs = [k.ra_deg for k in known], [k.dec_deg for k in known]
    out = []
    for ra_deg, dec_deg in positions:
        separations = separations_deg(ra_deg, dec_deg, ras, decs)
        near = [
            NearbySource(
                target_id=k.target_id,
                name=k.name,
                status=k.status,
                separation_arcsec=s * ARCSEC_PER_DEG,
            )
            for k, s in zip(known, separations, strict=True)
            if s * ARCSEC_PER_DEG <= NEARBY_RADIUS_ARCSEC
        ]
        out.append(sorted(near, key=lambda n: n.separation_arcsec))
    return out


def _merged(bands: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of (low, high) intervals as the fewest disjoint ones, lowest first."""
    merged: list[tuple[float, float]] = []
    for low, high in sorted(bands):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def labelled_detections(conn: Connection, target_id: int) -> list[LabelledDetection]:
    """A target's detections in time order, with their operator labels."""
    rows = conn.execute(
        select(
            *[candidates.c[name] for name in LabelledDetection.model_fields if name != "label"],
            labels.c.label,
        )
        .outerjoin(labels, labels.c.message_id == candidates.c.message_id)
        .where(candidates.c.target_id == target_id)
        .order_by(candidates.c.observed_at, candidates.c.message_id)
    ).all()
    return [LabelledDetection(**r._asdict()) for r in rows]


def position_error_arcsec(detections: list[LabelledDetection]) -> float | None:
    """The fused position's 1-sigma error: the inverse-variance combination of each detection's
    centroid error (seeing over S/N, with an astrometric floor), or the scatter of the
    detections over the square root of their number, whichever is larger."""
    if not detections:
        return None
    sigmas = np.array(
        [ASTROMETRIC_FLOOR_ARCSEC + CENTROID_SEEING_ARCSEC / max(d.snr, 1.0) for d in detections]
    )
    combined = float(1.0 / np.sqrt(np.sum(1.0 / sigmas**2)))
    if len(detections) < 2:
        return combined
    decs = np.array([d.dec_deg for d in detections])
    ras = np.array([d.ra_deg for d in detections])
    ra_offsets = (ras - ras.mean()) * np.cos(np.radians(decs.mean())) * ARCSEC_PER_DEG
    dec_offsets = (decs - decs.mean()) * ARCSEC_PER_DEG
    scatter = float(np.sqrt(np.mean(ra_offsets**2 + dec_offsets**2) / len(detections)))
    return max(combined, scatter)


def upper_limits(
    conn: Connection, ra_deg: float, dec_deg: float, detected_in: set[str]
) -> list[UpperLimit]:
    """Searched frames whose searched area covered the position but hold no detection of it,
    each with its limiting magnitude (sites that send one), oldest first: frames pointed within
    `SEARCHED_RADIUS_MAX_DEG` in declination (an index range, `ix_frame_searches_pointing_dec`),
    then each one's own radius, then the exact angular test."""
    rows = conn.execute(
        select(
            searches.c.site_id,
            searches.c.observed_at,
            searches.c.searched_at,
            searches.c.filter,
            searches.c.limiting_mag,
            searches.c.frame_sha256,
            searches.c.pointing_ra_deg,
            searches.c.pointing_dec_deg,
            searches.c.searched_radius_deg,
        ).where(
            searches.c.attempted,
            searches.c.limiting_mag.is_not(None),
            searches.c.searched_radius_deg.is_not(None),
            searches.c.pointing_dec_deg.between(
                dec_deg - SEARCHED_RADIUS_MAX_DEG, dec_deg + SEARCHED_RADIUS_MAX_DEG
            ),
            func.abs(searches.c.pointing_dec_deg - dec_deg) <= searches.c.searched_radius_deg,
        )
    ).all()
    covering = [
        r
        for r, separation in zip(
            rows,
            separations_deg(
                ra_deg,
                dec_deg,
                [r.pointing_ra_deg for r in rows],
                [r.pointing_dec_deg for r in rows],
            ),
            strict=True,
        )
        if separation <= r.searched_radius_deg and r.frame_sha256 not in detected_in
    ]
    limits = [
        UpperLimit(
            site_id=r.site_id,
            observed_at=r.observed_at or r.searched_at,
            filter=r.filter,
            mag=r.limiting_mag,
        )
        for r in covering
    ]
    return sorted(limits, key=lambda u: u.observed_at)


def separations_deg(
    ra_deg: float, dec_deg: float, ras_deg: list[float], decs_deg: list[float]
) -> list[float]:
    """Angular distances (degrees, haversine) from one position to each of others."""
    if not ras_deg:
        return []
    ras, decs = np.radians(ras_deg), np.radians(decs_deg)
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    haversine = (
        np.sin((decs - dec) / 2) ** 2 + np.cos(dec) * np.cos(decs) * np.sin((ras - ra) / 2) ** 2
    )
    separations: list[float] = np.degrees(2 * np.arcsin(np.sqrt(haversine))).tolist()
    return separations


def source_detail(conn: Connection, target_id: int) -> SourceDetail | None:
    """Everything the source page shows about one target, or None if there is none."""
    row = conn.execute(select(targets).where(targets.c.target_id == target_id)).one_or_none()
    if row is None:
        return None
    view = reads.target_view(conn, target_id)
    assert view is not None  # the row above exists, in the same connection
    found = labelled_detections(conn, target_id)
    return SourceDetail(
        **view.model_dump(),
        status=row.status,
        promoted_at=row.promoted_at,
        promoted_by=row.promoted_by,
        position_error_arcsec=position_error_arcsec(found),
        detections=found,
        upper_limits=upper_limits(conn, row.ra_deg, row.dec_deg, {d.frame_sha256 for d in found}),
        comments=comments_on(conn, target_id),
        followups=followup_page(conn, FollowUpFilter(target_id=target_id, limit=1000)).items,
    )


@dataclass(frozen=True)
class FollowUpFilter:
    """Which follow-ups to list: state, site, target, one page."""

    states: tuple[str, ...] = ()
    site_id: str | None = None
    target_id: int | None = None
    offset: int = 0
    limit: int = 50


def followup_page(conn: Connection, chosen: FollowUpFilter) -> FollowUpPage:
    """Follow-up requests, newest first, each with its history of site reports."""
    conditions: list[ColumnElement[bool]] = []
    if chosen.states:
        conditions.append(followups.c.state.in_(chosen.states))
    if chosen.site_id is not None:
        conditions.append(followups.c.site_id == chosen.site_id)
    if chosen.target_id is not None:
        conditions.append(followups.c.target_id == chosen.target_id)
    joined = followups.join(targets, targets.c.target_id == followups.c.target_id)
    total = conn.execute(select(func.count()).select_from(joined).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(followups, targets.c.name.label("target_name"))
        .select_from(joined)
        .where(*conditions)
        .order_by(followups.c.sent_at.desc(), followups.c.request_id)
        .offset(chosen.offset)
        .limit(chosen.limit)
    ).all()
    history = _histories(conn, [r.request_id for r in rows])
    items = [FollowUpDetail(**r._asdict(), history=history.get(r.request_id, [])) for r in rows]
    return FollowUpPage(total=int(total), offset=chosen.offset, limit=chosen.limit, items=items)


def _histories(conn: Connection, request_ids: list[str]) -> dict[str, list[FollowUpStatusView]]:
    rows = conn.execute(
        select(statuses)
        .where(statuses.c.request_id.in_(request_ids))
        .order_by(statuses.c.reported_at, statuses.c.exposures_done)
    ).all()
    out: dict[str, list[FollowUpStatusView]] = {}
    for r in rows:
        out.setdefault(r.request_id, []).append(
            FollowUpStatusView(
                state=r.state,
                reported_at=r.reported_at,
                reason=r.reason,
                exposures_done=r.exposures_done,
                exposures_total=r.exposures_total,
            )
        )
    return out

"""Candidate fusion: cross-match detections from every site and night into targets.

A detection joins the nearest target within the match radius (astropy `SkyCoord`), or starts a
new one. A target's confidence grows with independent sites; a target seen in a single frame
(a possible artefact) or linked to a nearby single detection at another time (a moving object)
is down-weighted.

What a target amounts to is its status (`TargetStatus`): a single detection stays a `candidate`
(most are noise: in the demo, 58 of 61 targets after ten minutes were single detections at
real/bogus 0.09); one seen in two or more frames or at two or more sites becomes a `source`
(`promoted_by` 'detections'); linked single detections of a moving object are a `tracklet`. An
operator's save or rejection (`coordinator.store.actions`) stands whatever is detected later.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from sqlalchemy import Connection, func, select, update

from coordinator.store.tables import (
    OPERATOR_PREFIX,
    CandidateRow,
    Target,
    TargetStatus,
    table_of,
)

SINGLE_FRAME_WEIGHT = 0.5
MOVING_WEIGHT = 0.2
MIN_MOTION_GAP = timedelta(minutes=10)
MAX_MOTION_GAP = timedelta(hours=12)
MIN_SOURCE_FRAMES = 2
"""Frames (or sites) a target needs to be a source rather than a candidate."""
DETECTIONS = "detections"


@dataclass(frozen=True)
class Detection:
    """What fusion needs to know about one candidate."""

    site_id: str
    frame_sha256: str
    real_bogus: float


def nearest_within(
    ra_deg: float, dec_deg: float, ras_deg: np.ndarray, decs_deg: np.ndarray, radius_arcsec: float
) -> int | None:
    """Index of the nearest position within the radius, or None."""
    if len(ras_deg) == 0:
        return None
    separations = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).separation(
        SkyCoord(ras_deg * u.deg, decs_deg * u.deg)
    )
    nearest = int(np.argmin(separations))
    return nearest if separations[nearest] <= radius_arcsec * u.arcsec else None


def group_positions(
    new_ra_deg: Sequence[float],
    new_dec_deg: Sequence[float],
    known_ra_deg: Sequence[float],
    known_dec_deg: Sequence[float],
    radius_arcsec: float,
) -> list[int]:
    """For each new position (in order), the index of the group it joins: the known groups
    come first (0..len(known)-1); a position matching none starts the next new group."""
    ras, decs = list(known_ra_deg), list(known_dec_deg)
    groups = []
    for ra, dec in zip(new_ra_deg, new_dec_deg, strict=True):
        index = nearest_within(ra, dec, np.array(ras), np.array(decs), radius_arcsec)
        if index is None:
            ras.append(ra)
            decs.append(dec)
            index = len(ras) - 1
        groups.append(index)
    return groups


def target_confidence(detections: Sequence[Detection], moving: bool) -> float:
    """How sure we are that a target is real: independent sites combine
    (1 - prod(1 - best real/bogus per site)); single-frame and moving targets are down-weighted."""
    best_per_site: dict[str, float] = {}
    for d in detections:
        best_per_site[d.site_id] = max(best_per_site.get(d.site_id, 0.0), d.real_bogus)
    confidence = 1.0 - float(np.prod([1.0 - rb for rb in best_per_site.values()]))
    if len({d.frame_sha256 for d in detections}) == 1:
        confidence *= SINGLE_FRAME_WEIGHT
    if moving:
        confidence *= MOVING_WEIGHT
    return confidence


@dataclass(frozen=True)
class Status:
    """A target's status and what made it so (None: nothing, it is a candidate or tracklet)."""

    status: TargetStatus
    promoted_by: str | None
    promoted_at: datetime | None


def target_status(
    current: Status, n_frames: int, n_sites: int, moving: bool, seen: datetime
) -> Status:
    """What a target is after its detections changed (an operator's decision stands)."""
    operator = current.promoted_by is not None and current.promoted_by.startswith(OPERATOR_PREFIX)
    if operator or current.status is TargetStatus.REJECTED:
        return current
    if moving:
        return Status(TargetStatus.TRACKLET, None, None)
    if n_frames >= MIN_SOURCE_FRAMES or n_sites >= MIN_SOURCE_FRAMES:
        if current.status is TargetStatus.SOURCE:
            return current
        return Status(TargetStatus.SOURCE, DETECTIONS, seen)
    return Status(TargetStatus.CANDIDATE, None, None)


def target_name(ra_deg: float, dec_deg: float) -> str:
    """An IAU-style name from the position, e.g. 'SF J100026.40-301124.0'."""
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
    ra = coord.ra.to_string(unit=u.hourangle, sep="", precision=2, pad=True)
    dec = coord.dec.to_string(sep="", precision=1, alwayssign=True, pad=True)
    return f"SF J{ra}{dec}"


def fuse_new_candidates(
    conn: Connection, radius_arcsec: float, moving_radius_arcsec: float
) -> set[int]:
    """Assign every stored candidate without a target to one; return the targets touched."""
    candidates = table_of(CandidateRow)
    targets = table_of(Target)
    new = conn.execute(
        select(
            candidates.c.message_id,
            candidates.c.ra_deg,
            candidates.c.dec_deg,
            candidates.c.observed_at,
        )
        .where(candidates.c.target_id.is_(None))
        .order_by(candidates.c.observed_at)
    ).all()
    if not new:
        return set()
    known = conn.execute(select(targets.c.target_id, targets.c.ra_deg, targets.c.dec_deg)).all()
    groups = group_positions(
        [c.ra_deg for c in new],
        [c.dec_deg for c in new],
        [t.ra_deg for t in known],
        [t.dec_deg for t in known],
        radius_arcsec,
    )
    target_ids = [t.target_id for t in known]
    created: list[int] = []
    for candidate, group in zip(new, groups, strict=True):
        if group == len(target_ids):
            target_ids.append(
                _create_target(conn, candidate.ra_deg, candidate.dec_deg, candidate.observed_at)
            )
            created.append(target_ids[-1])
        conn.execute(
            update(candidates)
            .where(candidates.c.message_id == candidate.message_id)
            .values(target_id=target_ids[group])
        )
    touched = {target_ids[g] for g in groups}
    for target_id in touched:
        _refresh_target(conn, target_id)
    moving = _link_moving(conn, created, radius_arcsec, moving_radius_arcsec)
    for target_id in moving:
        _refresh_target(conn, target_id)
    return touched | moving


def _create_target(conn: Connection, ra_deg: float, dec_deg: float, seen: datetime) -> int:
    return int(
        conn.execute(
            table_of(Target)
            .insert()
            .values(
                name=target_name(ra_deg, dec_deg),
                ra_deg=ra_deg,
                dec_deg=dec_deg,
                first_seen=seen,
                last_seen=seen,
                n_detections=0,
                n_sites=0,
                n_frames=0,
                moving=False,
                confidence=0.0,
                priority=5,
                status=TargetStatus.CANDIDATE.value,
            )
            .returning(table_of(Target).c.target_id)
        ).scalar_one()
    )


def _link_moving(
    conn: Connection, created: list[int], radius_arcsec: float, moving_radius_arcsec: float
) -> set[int]:
    """Flag new single detections that pair with another single detection nearby at another
    time (farther than the match radius, within the motion radius): a moving object's track."""
    targets = table_of(Target)
    linked: set[int] = set()
    for target_id in created:
        this = conn.execute(select(targets).where(targets.c.target_id == target_id)).one()
        if this.n_detections > 1:
            continue
        singles = conn.execute(
            select(
                targets.c.target_id, targets.c.ra_deg, targets.c.dec_deg, targets.c.first_seen
            ).where(
                targets.c.target_id != target_id,
                targets.c.n_detections <= 1,
                targets.c.first_seen.between(
                    this.first_seen - MAX_MOTION_GAP, this.first_seen + MAX_MOTION_GAP
                ),
                func.abs(targets.c.dec_deg - this.dec_deg) <= moving_radius_arcsec / 3600.0,
            )
        ).all()
        for other in singles:
            if abs(other.first_seen - this.first_seen) < MIN_MOTION_GAP:
                continue
            separation = SkyCoord(this.ra_deg * u.deg, this.dec_deg * u.deg).separation(
                SkyCoord(other.ra_deg * u.deg, other.dec_deg * u.deg)
            )
            if radius_arcsec * u.arcsec < separation <= moving_radius_arcsec * u.arcsec:
                linked |= {target_id, other.target_id}
    if linked:
        conn.execute(update(targets).where(targets.c.target_id.in_(linked)).values(moving=True))
    return linked


def _refresh_target(conn: Connection, target_id: int) -> None:
    """Recompute a target's position, counts, times and confidence from its detections."""
    candidates = table_of(CandidateRow)
    targets = table_of(Target)
    rows = conn.execute(
        select(
            candidates.c.site_id,
            candidates.c.frame_sha256,
            candidates.c.real_bogus,
            candidates.c.ra_deg,
            candidates.c.dec_deg,
            candidates.c.snr,
            candidates.c.observed_at,
        ).where(candidates.c.target_id == target_id)
    ).all()
    target = conn.execute(
        select(
            targets.c.moving, targets.c.status, targets.c.promoted_by, targets.c.promoted_at
        ).where(targets.c.target_id == target_id)
    ).one()
    moving = target.moving
    position = SkyCoord([r.ra_deg for r in rows] * u.deg, [r.dec_deg for r in rows] * u.deg)
    weights = np.array([max(r.snr, 1.0) for r in rows])
    mean = np.average(position.cartesian.xyz.value, axis=1, weights=weights)
    centre = SkyCoord(x=mean[0], y=mean[1], z=mean[2], representation_type="cartesian").spherical
    detections = [Detection(r.site_id, r.frame_sha256, r.real_bogus) for r in rows]
    n_frames = len({r.frame_sha256 for r in rows})
    n_sites = len({r.site_id for r in rows})
    last_seen = max(r.observed_at for r in rows)
    status = target_status(
        Status(TargetStatus(target.status), target.promoted_by, target.promoted_at),
        n_frames,
        n_sites,
        moving,
        last_seen,
    )
    conn.execute(
        update(targets)
        .where(targets.c.target_id == target_id)
        .values(
            ra_deg=float(centre.lon.to_value(u.deg)) % 360.0,
            dec_deg=float(centre.lat.to_value(u.deg)),
            first_seen=min(r.observed_at for r in rows),
            last_seen=last_seen,
            n_detections=len(rows),
            n_sites=n_sites,
            n_frames=n_frames,
            confidence=target_confidence(detections, moving),
            status=status.status.value,
            promoted_by=status.promoted_by,
            promoted_at=status.promoted_at,
        )
    )

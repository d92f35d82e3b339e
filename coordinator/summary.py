"""The fleet summary: every site's health and quality, targets and follow-ups, in one model.

`fleet_summary` is what the console's `/api/summary`, `skyfleet status` and the demo's `--json`
show.
"""

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from coordinator.quality import (
    agent_alerts,
    clock_alerts,
    recent_fraction_bad,
    site_status,
)
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.views import FleetSummary, SiteView
from protos.base import utc_now


def site_views(conn: Connection, settings: CoordinatorSettings, now: datetime) -> list[SiteView]:
    """Every site with its status, alerts and quality figures."""
    quality = reads.quality_by_site(conn)
    last_hour = reads.frames_since_by_site(conn, now - timedelta(hours=1))
    rejected = reads.rejections_by_site(conn)
    searched = reads.searches_by_site(conn)
    views = []
    for site in reads.site_records(conn):
        site_id = site["site_id"]
        recent = reads.recent_labels(conn, site_id, settings.weather_window_frames)
        # judged by when the centre received it: the site's own clock may be wrong
        heartbeat_at = site["heartbeat_received_at"] or site["heartbeat_at"]
        status, alerts = site_status(
            heartbeat_at,
            recent,
            now,
            stale_s=settings.heartbeat_stale_s,
            bad_fraction=settings.weather_bad_fraction,
        )
        alerts += agent_alerts(site["restarts"], site["failed_frames"])
        alerts += clock_alerts(site["heartbeat_at"], site["heartbeat_received_at"])
        q = quality.get(site_id, {})
        frames = int(q.get("frames") or 0)
        counts = {label: int(q.get(label) or 0) for label in ("good", "medium", "bad")}
        frames_searched, frames_search_skipped = searched.get(site_id, (0, 0))
        views.append(
            SiteView(
                site_id=site_id,
                name=site["name"],
                lat_deg=site["lat_deg"],
                lon_deg=site["lon_deg"],
                status=status,
                alerts=alerts,
                heartbeat_age_s=(now - heartbeat_at).total_seconds() if heartbeat_at else None,
                agent_version=site["agent_version"],
                model_version=site["model_version"],
                queue_depth=site["queue_depth"],
                frames=frames,
                good=counts["good"],
                medium=counts["medium"],
                bad=counts["bad"],
                fraction_good=counts["good"] / frames if frames else 0.0,
                fraction_medium=counts["medium"] / frames if frames else 0.0,
                fraction_bad=counts["bad"] / frames if frames else 0.0,
                recent_fraction_bad=recent_fraction_bad(recent),
                mean_fwhm_arcsec=q.get("mean_fwhm_arcsec"),
                mean_background_adu=q.get("mean_background_adu"),
                mean_transparency=q.get("mean_transparency"),
                frames_last_hour=last_hour.get(site_id, 0),
                rejected=rejected.get(site_id, 0),
                frames_searched=frames_searched,
                frames_search_skipped=frames_search_skipped,
            )
        )
    return views


def fleet_summary(
    engine: Engine, settings: CoordinatorSettings, now: datetime | None = None
) -> FleetSummary:
    """The whole fleet as the coordinator's store knows it now."""
    now = now or utc_now()
    with engine.connect() as conn:
        sites = site_views(conn, settings, now)
        min_confidence = settings.followup_min_confidence
        total_targets, confident, multi_site = reads.target_counts(conn, min_confidence)
        return FleetSummary(
            generated_at=now,
            sites=sites,
            frames=sum(s.frames for s in sites),
            rejected=sum(s.rejected for s in sites),
            candidates=reads.candidate_count(conn),
            frames_searched=sum(s.frames_searched for s in sites),
            frames_search_skipped=sum(s.frames_search_skipped for s in sites),
            targets=total_targets,
            confident_targets=confident,
            multi_site_targets=multi_site,
            targets_by_status=reads.targets_by_status(conn),
            followed_targets_by_status=reads.targets_by_status(conn, followed_only=True),
            followups=reads.followup_counts(conn),
            alerts=[f"{s.site_id}: {alert}" for s in sites for alert in s.alerts],
        )

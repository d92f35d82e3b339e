"""The night report's API (`/api/night`): per site and for the fleet, the hours on sky, frames
by label and by cause, rejections, candidates, sources, follow-ups and downtime of one night,
as JSON or CSV (`format=csv`, a download).

A site's night runs from local mean noon to the next local noon (by its longitude). Without a
`date`, each site's report is of the night it is in now. Hours on sky add up the time between
consecutive frames no more than `FRAME_GAP_MAX_S` apart; downtime is the astronomically dark
time so far (Sun below -18 degrees) not on sky."""

import csv
import io
from datetime import date as Date
from datetime import datetime, timedelta
from typing import Annotated, Literal, get_args

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Connection, Engine

from coordinator.console.access import Access
from coordinator.console.site_api import SITE_ID_PATTERN, known_site
from coordinator.console.sky_times import night_of_date, night_sky, night_window
from coordinator.store import reads
from coordinator.store.night_reads import NightActivity, night_activity
from coordinator.views import NightReport, NightSiteReport, NightSky
from protos import QualityLabel
from protos.base import utc_now
from protos.frames import Reason

FRAME_GAP_MAX_S = 900.0
"""Longest gap between two frames still counted as time on sky (seconds): a slew, a focus run
or a long exposure; longer, and the telescope was not observing."""
LABELS = [label.value for label in QualityLabel]
REASONS: tuple[str, ...] = get_args(Reason)
FLEET = "fleet"


def hours_on_sky(times: np.ndarray) -> float:
    """Hours between consecutive frames (`datetime64` times in order), leaving out gaps over
    `FRAME_GAP_MAX_S`."""
    gaps_s = np.diff(times) / np.timedelta64(1, "s")
    return float(gaps_s[gaps_s <= FRAME_GAP_MAX_S].sum() / 3600.0)


def dark_hours_so_far(sky: NightSky, now: datetime) -> float | None:
    """Hours of astronomical darkness between dusk and dawn that have passed by `now`."""
    if sky.astronomical_dusk is None or sky.astronomical_dawn is None:
        return sky.dark_hours if sky.dark_hours in (0.0, 24.0) else None
    end = min(sky.astronomical_dawn, max(now, sky.astronomical_dusk))
    return (end - sky.astronomical_dusk).total_seconds() / 3600.0


def site_report(
    site_id: str, start: datetime, end: datetime, sky: NightSky | None, done: NightActivity
) -> NightSiteReport:
    """One site's night from what it did and its sky."""
    on_sky = hours_on_sky(done.times)
    dark = dark_hours_so_far(sky, min(utc_now(), end)) if sky else None
    return NightSiteReport(
        site_id=site_id,
        night_start=start,
        night_end=end,
        dark_hours=sky.dark_hours if sky else None,
        hours_on_sky=on_sky,
        downtime_hours=None if dark is None else max(0.0, dark - on_sky),
        frames=len(done.times),
        frames_by_label={label: done.labels[label] for label in LABELS},
        frames_by_reason={reason: done.reasons[reason] for reason in REASONS},
        rejected=done.rejected,
        candidates=done.candidates,
        sources=len(done.source_ids),
        followups=done.followups,
    )


def fleet_report(sites: list[NightSiteReport], sources: int) -> NightSiteReport:
    """The fleet's night: every site's figures added up (`sources`: distinct across sites)."""

    def total(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    states = sorted({state for s in sites for state in s.followups})
    return NightSiteReport(
        site_id=FLEET,
        night_start=min((s.night_start for s in sites if s.night_start), default=None),
        night_end=max((s.night_end for s in sites if s.night_end), default=None),
        dark_hours=total([s.dark_hours for s in sites]),
        hours_on_sky=sum(s.hours_on_sky for s in sites),
        downtime_hours=total([s.downtime_hours for s in sites]),
        frames=sum(s.frames for s in sites),
        frames_by_label={k: sum(s.frames_by_label[k] for s in sites) for k in LABELS},
        frames_by_reason={k: sum(s.frames_by_reason[k] for s in sites) for k in REASONS},
        rejected=sum(s.rejected for s in sites),
        candidates=sum(s.candidates for s in sites),
        sources=sources,
        followups={k: sum(s.followups.get(k, 0) for s in sites) for k in states},
    )


def night_report(conn: Connection, night: Date | None, site_id: str | None) -> NightReport:
    """The night report for a night (None: each site's current night), one site or all."""
    now = utc_now()
    records = [known_site(conn, site_id)] if site_id else reads.site_records(conn)
    reports, source_ids = [], set()
    for record in records:
        lat, lon, height = record["lat_deg"], record["lon_deg"], record["height_m"]
        if night is None:
            start, end = night_window(lon, now)
        else:
            start, end = night_of_date(lon, night.isoformat())
        located = lat is not None and lon is not None
        sky = night_sky(lat, lon, height, start + timedelta(hours=12)) if located else None
        done = night_activity(conn, record["site_id"], start, end)
        source_ids |= done.source_ids
        reports.append(site_report(record["site_id"], start, end, sky, done))
    return NightReport(
        date=night.isoformat() if night else None,
        generated_at=now,
        sites=reports,
        fleet=fleet_report(reports, len(source_ids)),
    )


def report_csv(report: NightReport) -> str:
    """The report as CSV: one row per site, then the fleet's, one column per figure."""
    rows = [*report.sites, report.fleet]
    states = sorted({state for r in rows for state in r.followups})
    header = ["site_id", "night_start", "night_end", "dark_hours", "hours_on_sky"]
    header += ["downtime_hours", "frames", "rejected", "candidates", "sources"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        header + LABELS + [f"reason_{r}" for r in REASONS] + [f"followups_{s}" for s in states]
    )
    for r in rows:
        values = [r.model_dump(mode="json")[k] for k in header]
        values += [r.frames_by_label[k] for k in LABELS]
        values += [r.frames_by_reason[k] for k in REASONS]
        writer.writerow(values + [r.followups.get(s, 0) for s in states])
    return out.getvalue()


def night_api(engine: Engine, access: Access) -> APIRouter:
    """The night report, for every console reader."""
    api = APIRouter(prefix="/api", dependencies=[Depends(access.reader)])

    @api.get("/night", response_model=NightReport)
    def night(
        date: Annotated[Date | None, Query(description="The night's evening, YYYY-MM-DD.")] = None,
        site: Annotated[str | None, Query(pattern=SITE_ID_PATTERN)] = None,
        format: Literal["json", "csv"] = "json",
    ) -> NightReport | Response:
        with engine.connect() as conn:
            report = night_report(conn, date, site)
        if format == "json":
            return report
        name = f"skyfleet-night-{report.date or 'current'}{f'-{site}' if site else ''}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return api

"""A seeded store for the candidate, source and follow-up pages' tests: two sites, a source seen
by both in two filters, candidates to scan (one beside the source), and a follow-up of the
source with its site's reports and its explanation."""

from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine, insert, select, update

from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.settings import CoordinatorSettings
from coordinator.store.tables import (
    CandidateRow,
    FollowUp,
    FollowUpStatusRow,
    Target,
    TargetStatus,
    table_of,
)
from protos import (
    FrameIdentity,
    FrameScore,
    FrameSearched,
    SiteConfig,
    SiteHeartbeat,
    SkyPosition,
    TransientCandidate,
    TransientSearch,
    stable_message_id,
)
from protos.base import utc_now
from tests.coordinators import make_candidate, make_config, make_heartbeat, make_score, sha

SOURCE_RA, SOURCE_DEC = 150.0, 20.0
NEAR_RA, NEAR_DEC = 150.0, 20.0 + 20 / 3600
"""A candidate 20 arcsec north of the source: the scanning page names the source as nearby."""
ARCSEC = 1 / 3600
FAR = ((210.0, -10.0, 0.3), (30.0, 5.0, 0.5), (95.0, 40.0, 0.7))
"""Candidates far from anything: position and real/bogus score, 2, 3 and 4 hours ago."""


def with_magnitude(candidate: TransientCandidate, mag: float, band: str) -> TransientCandidate:
    """The candidate with a calibrated magnitude in a filter, as a calibrated site sends it."""
    return candidate.model_copy(update={"mag": mag, "mag_err": 0.05, "filter": band})


def seed_messages(now: datetime) -> list[TransientCandidate]:
    """The source's four detections (north r, south g, over two nights) and the candidates."""
    hour = timedelta(hours=1)
    detections = [  # site, frame, offset north (arcsec), hours ago, magnitude, filter
        ("north", "n-1", 0.0, 30, 18.2, "r"),
        ("south", "s-1", 0.4, 26, 18.6, "g"),
        ("north", "n-2", -0.3, 6, 17.9, "r"),
        ("south", "s-2", 0.0, 3, 18.3, "g"),
    ]
    source = [
        with_magnitude(
            make_candidate(
                site, frame, SOURCE_RA, SOURCE_DEC + north * ARCSEC, when=now - ago * hour
            ),
            mag,
            band,
        )
        for site, frame, north, ago, mag, band in detections
    ]
    near = with_magnitude(
        make_candidate("south", "s-near", NEAR_RA, NEAR_DEC, real_bogus=0.95, when=now - hour),
        19.1,
        "r",
    )
    far = [
        make_candidate("north", f"n-far-{i}", ra, dec, real_bogus=score, when=now - i * hour)
        for i, (ra, dec, score) in enumerate(FAR, start=2)
    ]
    return [*source, near, *far]


UPPER_LIMIT_MAG = 19.4
"""The one searched frame that covered the source without detecting it went this deep."""


def searched_frames(now: datetime) -> list[FrameSearched]:
    """Frames searched at north in r: one over the source without a detection (an upper
    limit), one that detected it, one elsewhere, one from a site that sends no limit."""
    frames = [  # frame, pointing offset east (deg), limiting mag, hours ago
        ("n-0", 0.05, UPPER_LIMIT_MAG, 40),
        ("n-1", 0.0, 19.6, 30),
        ("n-away", 5.0, 19.5, 20),
        ("n-old", 0.0, None, 10),
    ]
    return [
        FrameSearched(
            message_id=stable_message_id(FrameSearched.KIND, "north", sha("north", frame)),
            site_id="north",
            frame=FrameIdentity(
                file_name=f"{frame}.fits",
                sha256=sha("north", frame),
                date_obs=now - timedelta(hours=ago),
                exptime_s=60.0,
                filter="r",
                pointing=SkyPosition(ra_deg=SOURCE_RA + east, dec_deg=SOURCE_DEC),
                width_px=1024,
                height_px=1024,
            ),
            score_message_id=f"frame-score:{frame}",
            search=TransientSearch(
                attempted=True,
                limiting_mag=limit,
                searched_radius_deg=None if limit is None else 0.085,
            ),
        )
        for frame, east, limit, ago in frames
    ]


def seed_store(engine: Engine) -> int:
    """Write the fleet into a store the way ingest does; the source's target id."""
    now = utc_now()
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1.0)
    configs = [make_config("north", 28.7, -17.9), make_config("south", -29.3, -70.7)]
    writer.write(SiteConfig.KIND, configs, now)
    writer.write(SiteHeartbeat.KIND, [make_heartbeat("north"), make_heartbeat("south")], now)
    writer.write(TransientCandidate.KIND, seed_messages(now), now)
    writer.write(FrameSearched.KIND, searched_frames(now), now)
    targets, candidates = table_of(Target), table_of(CandidateRow)
    with engine.begin() as conn:
        source_id = conn.execute(
            select(candidates.c.target_id).where(candidates.c.frame_file_name == "n-1.fits")
        ).scalar_one()
        conn.execute(
            update(targets)
            .where(targets.c.target_id == source_id)
            .values(status=TargetStatus.SOURCE.value, promoted_by="detections", promoted_at=now)
        )
        add_followup(conn, source_id, now)
    return int(source_id)


def explanation(now: datetime) -> dict[str, object]:
    """Why the seeded follow-up went to south, as the planner explains its choice."""
    start = (now - timedelta(minutes=45)).isoformat()
    expected = {"seeing_arcsec": 1.4, "transparency": 0.9, "snr": 0.8}
    return {
        "site_id": "south",
        "start": start,
        "score": 0.82,
        "constraints_met": ["site_online", "altitude", "at_night", "airmass"],
        "deciding": {"constraint": "expected_quality", "detail": "seeing 1.4 at south vs 2.6"},
        "expected": {**expected, "airmass": 1.2},
        "sites": [
            {"site_id": "south", "score": 0.82, "start": start, "altitude_deg": 56.0,
             "airmass": 1.2, "factors": {"altitude": 1.0, "at_night": 1.0}, "expected": expected},
            {"site_id": "north", "score": 0.0, "start": None, "altitude_deg": None,
             "airmass": None, "factors": {"altitude": 1.0, "at_night": 0.0}, "expected": expected},
        ],
    }  # fmt: skip


def add_followup(conn, target_id: int, now: datetime) -> None:
    """A finished follow-up of the source at south: accepted, observing 1/2, 2/2, done."""
    minute = timedelta(minutes=1)
    conn.execute(
        insert(table_of(FollowUp)).values(
            request_id=f"t{target_id}-1",
            target_id=target_id,
            site_id="south",
            state="done",
            priority=3,
            score=0.82,
            not_before=None,
            deadline=now + timedelta(hours=20),
            sent_at=now - 50 * minute,
            updated_at=now - 20 * minute,
            reason="score 0.82",
            plan={"filter": "r", "exptime_s": 60.0, "count": 2},
            explanation=explanation(now),
            exposures_done=2,
            exposures_total=2,
        )
    )
    reports = [("accepted", 0, 45), ("observing", 1, 40), ("observing", 2, 30), ("done", 2, 20)]
    conn.execute(
        insert(table_of(FollowUpStatusRow)),
        [
            {
                "message_id": f"followup-status:{n:032x}",
                "request_id": f"t{target_id}-1",
                "site_id": "south",
                "state": state,
                "reported_at": now - ago * minute,
                "reason": None,
                "exposures_done": done,
                "exposures_total": 2,
            }
            for n, (state, done, ago) in enumerate(reports)
        ],
    )


def console_client(engine: Engine, *, host: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client talking to the console app in-process, from `host`."""
    app = create_console(engine, CoordinatorSettings())
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console")


def seed_source_at(
    engine: Engine, site_id: str, ra_deg: float, dec_deg: float, *, good_frames: int = 0
) -> int:
    """A source seen in two frames of one site at a position, and the site's `good_frames`
    latest frames scored good (a clear night so far); the source's target id."""
    now = utc_now()
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1.0)
    clear = [make_score(site_id, i, when=now - timedelta(seconds=i)) for i in range(good_frames)]
    writer.write(FrameScore.KIND, clear, now)
    seen = [make_candidate(site_id, frame, ra_deg, dec_deg, when=now) for frame in ("f1", "f2")]
    writer.write(TransientCandidate.KIND, seen, now)
    candidates = table_of(CandidateRow)
    with engine.connect() as conn:
        target_id = conn.execute(
            select(candidates.c.target_id).where(candidates.c.site_id == site_id).limit(1)
        ).scalar_one()
    engine.dispose()
    return int(target_id)

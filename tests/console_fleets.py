"""A seeded fleet for the console's page and API tests: three sites at real observatories,
each with a configuration, a heartbeat and a night's first frames (east's mostly bad, with
their reasons and thumbnails), two candidates fused into one source and a follow-up; as real
protos messages, written by the coordinator's own ingest (`StoreWriter`) or published to it."""

from datetime import datetime, timedelta

from coordinator.console.sky_times import night_window
from coordinator.ingest import StoreWriter
from imaging.thumbnail import thumbnail_png_b64
from protos import FleetMessage, FrameScore, QualityLabel, QualityReason
from protos.base import utc_now
from protos.site import SiteConditions
from tests.coordinators import make_candidate, make_config, make_heartbeat, make_score
from tests.skies import star_field

SITES = {"north": (28.76, -17.88), "south": (-29.26, -70.73), "east": (32.78, 78.96)}
"""Site id: (latitude, longitude) in degrees (La Palma, La Silla, Hanle)."""
FRAMES_PER_SITE = 12
FRAME_SPACING = timedelta(minutes=2)
BAD_SEEING = QualityReason(
    reason="seeing", value=4.2, threshold=2.5, unit="arcsec", message="FWHM 4.2″ over 2.5″"
)
CLOUD = QualityReason(
    reason="transparency", value=0.31, threshold=0.6, unit="", message="transparency 0.31 < 0.6"
)


def frame_times(lon_deg: float, now: datetime) -> list[datetime]:
    """When a site's frames were taken: the last half hour, kept inside the site's current
    night (after its local noon) so a report of that night holds them all."""
    start, _ = night_window(lon_deg, now)
    first = max(now - FRAMES_PER_SITE * FRAME_SPACING, start + timedelta(minutes=1))
    return [first + i * FRAME_SPACING for i in range(FRAMES_PER_SITE)]


def labels_of(site_id: str) -> list[QualityLabel]:
    """east: 9 bad of 12 (weather); south: 2 medium; north: all good."""
    bad = {"north": 0, "south": 0, "east": 9}[site_id]
    medium = {"north": 0, "south": 2, "east": 1}[site_id]
    good = FRAMES_PER_SITE - bad - medium
    return [QualityLabel.GOOD] * good + [QualityLabel.MEDIUM] * medium + [QualityLabel.BAD] * bad


def scored(site_id: str, index: int, label: QualityLabel, when: datetime, sky: str) -> FrameScore:
    """A frame score with a thumbnail, and the reasons a bad frame has."""
    score = make_score(
        site_id,
        index,
        label,
        fwhm_arcsec=4.2 if label is QualityLabel.BAD else 1.4 + 0.05 * index,
        transparency=0.31 if label is QualityLabel.BAD else 0.92,
        background_adu=1000.0 + 20.0 * index,
        when=when,
    )
    reasons = [BAD_SEEING, CLOUD] if label is QualityLabel.BAD else []
    return FrameScore.model_validate(
        {**score.model_dump(), "reasons": reasons, "thumbnail_png_b64": sky}
    )


def fleet_messages(now: datetime | None = None) -> list[FleetMessage]:
    """The seeded fleet's messages, configurations and heartbeats first."""
    now = now or utc_now()
    sky = thumbnail_png_b64(star_field(shape=(192, 192), stars=12, fwhm_px=3.0))
    assert sky is not None
    messages: list[FleetMessage] = []
    for site_id, (lat, lon) in SITES.items():
        heartbeat = make_heartbeat(site_id, when=now)
        if site_id == "east":
            conditions = SiteConditions(safe=True, cloud_cover_pct=70.0, humidity_pct=55.0)
            heartbeat = heartbeat.model_copy(update={"conditions": conditions})
        messages += [make_config(site_id, lat, lon), heartbeat]
        times = frame_times(lon, now)
        messages += [
            scored(site_id, i, label, times[i], sky) for i, label in enumerate(labels_of(site_id))
        ]
    messages += [
        make_candidate("north", "n-1", 150.0, 20.0, when=now - timedelta(minutes=3)),
        make_candidate("south", "s-1", 150.0, 20.0 + 0.5 / 3600, when=now - timedelta(minutes=2)),
    ]
    return messages


def write_fleet(writer: StoreWriter, messages: list[FleetMessage]) -> None:
    """Write messages as the coordinator's ingest does: each kind's batch in one transaction."""
    by_kind: dict[str, list[FleetMessage]] = {}
    for message in messages:
        by_kind.setdefault(message.KIND, []).append(message)
    for kind, batch in by_kind.items():
        writer.write(kind, batch, utc_now())

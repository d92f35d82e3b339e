"""Shared pieces of the coordinator tests: a database of each kind (SQLite file, or a fresh
PostgreSQL database dropped afterwards), simulated-site messages and a running coordinator.

The fixtures (`postgres_url`, `database_url`, `coordinator`, `offline_iers`) are registered for
the whole suite by `pytest_plugins` in `conftest.py`, so a test names them as arguments without
importing them; the builders (`make_score`, `make_search`, ...) and `eventually` are imported.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from astropy.utils import iers
from psycopg import sql

from coordinator.scheduling.sky import configure_offline_iers
from coordinator.settings import CoordinatorSettings
from fleetbus.server import EmbeddedNats
from protos import (
    CameraConfig,
    ClassProbabilities,
    FrameIdentity,
    FrameRejected,
    FrameScore,
    FrameSearched,
    ImageMetrics,
    LinkState,
    ModelRef,
    QualityLabel,
    RejectReason,
    SiteConfig,
    SiteHeartbeat,
    SiteLocation,
    SkyPosition,
    TransientCandidate,
    TransientCutouts,
    TransientSearch,
    stable_message_id,
)
from protos.base import utc_now
from tests.examples import stamp

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from coordinator.service import Coordinator

POSTGRES_ADMIN_URL = os.environ.get(
    "SKYFLEET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PROBABILITIES = {
    QualityLabel.GOOD: ClassProbabilities(good=0.8, medium=0.15, bad=0.05),
    QualityLabel.MEDIUM: ClassProbabilities(good=0.2, medium=0.7, bad=0.1),
    QualityLabel.BAD: ClassProbabilities(good=0.05, medium=0.15, bad=0.8),
}


@pytest.fixture
def offline_iers() -> Iterator[None]:
    """Astropy set up as a starting coordinator sets it up (`configure_offline_iers`): skies are
    computed as at an observatory, with no IERS download. Put back to astropy's defaults after
    the test, so a test that relies on the coordinator doing it cannot pass by accident."""
    configure_offline_iers()
    yield
    for item in ("auto_download", "auto_max_age", "iers_degraded_accuracy"):
        iers.conf.reset(item)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = f"skyfleet_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The coordinator's database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def coordinator_settings(
    nats_url: str, database_url: str, **overrides: object
) -> CoordinatorSettings:
    """Settings for a test coordinator: free console port, quick loops."""
    values: dict[str, object] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "http_port": 0,
        "plan_interval_s": 0.3,
        "ingest_idle_wait_s": 0.1,
    }
    values.update(overrides)
    return CoordinatorSettings(**values)


@pytest.fixture
async def coordinator(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator["Coordinator"]:
    """A running coordinator on the test NATS server and database."""
    # Imported here, not at the top: this module is a plugin of the whole suite, and the service
    # (astropy, SQLAlchemy, the console) would add a second to the start of every test run.
    from coordinator.service import Coordinator

    running = Coordinator(coordinator_settings(nats_server.url, database_url))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def add_console_user(engine: "Engine", name: str, role: str) -> str:
    """Add a console user to a coordinator's store, as `skyfleet users add` does; its token."""
    from coordinator.store.roles import Role
    from coordinator.store.users import add_user

    with engine.begin() as conn:
        return add_user(conn, name, Role(role), utc_now())


async def eventually(check, timeout_s: float = 30.0, interval_s: float = 0.1):
    """Poll `check()` (sync, run in a thread) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout_s} s; last: {result!r}")
        await asyncio.sleep(interval_s)


def sha(*parts: object) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))).hex * 2


def make_score(
    site_id: str,
    index: int,
    label: QualityLabel = QualityLabel.GOOD,
    *,
    fwhm_arcsec: float = 2.0,
    background_adu: float = 1000.0,
    transparency: float = 0.9,
    model_version: str = "1",
    when: datetime | None = None,
) -> FrameScore:
    """A valid frame score from a simulated site."""
    digest = sha(site_id, "frame", index)
    probabilities = PROBABILITIES[label]
    return FrameScore(
        message_id=stable_message_id(FrameScore.KIND, site_id, digest),
        site_id=site_id,
        created_at=when or utc_now(),
        frame=FrameIdentity(
            file_name=f"{site_id}-{index:05d}.fits",
            sha256=digest,
            date_obs=when or utc_now(),
            exptime_s=60.0,
            filter="r",
            pointing=SkyPosition(ra_deg=10.0, dec_deg=20.0),
            width_px=1024,
            height_px=1024,
        ),
        label=label,
        confidence=probabilities.of(label),
        probabilities=probabilities,
        model=ModelRef(name="quality", version=model_version),
        metrics=ImageMetrics(
            background_adu=background_adu,
            background_rms_adu=10.0,
            fwhm_arcsec=fwhm_arcsec,
            ellipticity=0.05,
            source_count=300,
            saturated_fraction=0.0,
            transparency=transparency,
        ),
    )


def make_rejection(site_id: str, index: int) -> FrameRejected:
    return FrameRejected(
        message_id=stable_message_id(FrameRejected.KIND, site_id, str(index)),
        site_id=site_id,
        file_name=f"broken-{index}.fits",
        reason=RejectReason.TRUNCATED,
        message="header promises more data than the file holds",
    )


def make_search(
    score: FrameScore, *, candidates: int = 0, skipped_reason: str | None = None
) -> FrameSearched:
    """The site's search record of a scored frame: searched, or skipped for `skipped_reason`."""
    return FrameSearched(
        message_id=stable_message_id(FrameSearched.KIND, score.site_id, score.frame.sha256),
        site_id=score.site_id,
        frame=score.frame,
        score_message_id=score.message_id,
        search=TransientSearch(
            attempted=skipped_reason is None, candidates=candidates, skipped_reason=skipped_reason
        ),
        search_ms=None if skipped_reason else 3100.0,
    )


def make_heartbeat(
    site_id: str,
    *,
    when: datetime | None = None,
    queue: int = 0,
    restarts: dict[str, int] | None = None,
    failed_frames: int = 0,
) -> SiteHeartbeat:
    when = when or utc_now()
    return SiteHeartbeat(
        message_id=stable_message_id(SiteHeartbeat.KIND, site_id, when.isoformat()),
        site_id=site_id,
        created_at=when,
        agent_version="0.1.0",
        model_version="1",
        queue_depths={"ingest": queue},
        disk_free_bytes=10**10,
        link_state=LinkState.UP,
        restarts=restarts or {},
        failed_frames=failed_frames,
    )


def make_config(
    site_id: str, lat_deg: float, lon_deg: float, horizon_deg: float = 20.0
) -> SiteConfig:
    return SiteConfig(
        message_id=stable_message_id(SiteConfig.KIND, site_id, f"{lat_deg},{lon_deg}"),
        site_id=site_id,
        name=f"Telescope {site_id}",
        location=SiteLocation(lat_deg=lat_deg, lon_deg=lon_deg, height_m=2000.0),
        horizon_limit_deg=horizon_deg,
        camera=CameraConfig(
            pixel_scale_arcsec=0.6,
            gain_e_per_adu=1.5,
            read_noise_e=6.0,
            saturation_adu=60000.0,
            width_px=1024,
            height_px=1024,
        ),
    )


def make_candidate(
    site_id: str,
    frame: str,
    ra_deg: float,
    dec_deg: float,
    *,
    real_bogus: float = 0.9,
    flux_adu: float = 5000.0,
    when: datetime | None = None,
) -> TransientCandidate:
    digest = sha(site_id, frame)
    return TransientCandidate(
        message_id=stable_message_id(TransientCandidate.KIND, site_id, digest, "1"),
        site_id=site_id,
        frame_sha256=digest,
        frame_file_name=f"{frame}.fits",
        observed_at=when or utc_now() - timedelta(minutes=5),
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        x_px=100.0,
        y_px=120.0,
        flux_adu=flux_adu,
        flux_err_adu=100.0,
        snr=flux_adu / 100.0,
        real_bogus=real_bogus,
        cutouts=TransientCutouts(new=stamp(2.0), reference=stamp(1.0), difference=stamp(1.0)),
    )

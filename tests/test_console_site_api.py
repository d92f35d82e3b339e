"""The console's site, fleet and night APIs on a seeded fleet (SQLite, written by the
coordinator's ingest): a site's night and frames with filters and thumbnails, the terminator,
the night report as JSON and CSV, and bad input answered with a clear 404 or 422 that writes
nothing."""

import csv
import io
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.service import open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store.tables import FrameScoreRow
from protos.base import utc_now
from tests.console_fleets import FRAMES_PER_SITE, fleet_messages, write_fleet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path, offline_iers):
    engine = open_store(f"sqlite:///{tmp_path / 'console.sqlite3'}")
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    write_fleet(writer, fleet_messages())
    yield engine
    engine.dispose()


@pytest.fixture
async def http(store):
    app = create_console(store, CoordinatorSettings())
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        yield client


async def test_a_site_shows_its_night_link_weather_and_model(http):
    site = (await http.get("/api/sites/east")).json()
    night = site["night"]
    assert site["status"] == "weather" and site["model_version"] == "1"
    assert site["link_state"] == "up" and site["conditions"]["cloud_cover_pct"] == 70.0
    assert night["sunset"] < night["civil_dusk"] < night["nautical_dusk"]
    assert night["nautical_dusk"] < night["astronomical_dusk"] < night["astronomical_dawn"]
    assert night["astronomical_dawn"] < night["sunrise"]
    assert 0.0 <= night["moon_illumination"] <= 1.0
    assert 0.0 < night["dark_hours"] < 24.0


async def test_the_frame_browser_filters_pages_and_shows_thumbnails(http):
    everything = (await http.get("/api/sites/east/frames", params={"limit": 5})).json()
    bad = (await http.get("/api/sites/east/frames", params={"label": "bad"})).json()
    cloudy = (await http.get("/api/sites/east/frames", params={"reason": "transparency"})).json()
    trailed = (await http.get("/api/sites/east/frames", params={"reason": "trailing"})).json()
    second = (await http.get("/api/sites/east/frames", params={"limit": 5, "offset": 5})).json()
    newest = everything["frames"][0]
    recent = (
        await http.get(
            "/api/sites/east/frames",
            params={"since": (utc_now() - timedelta(hours=2)).isoformat()},
        )
    ).json()
    thumbnail = await http.get(f"/api/frames/{bad['frames'][0]['message_id']}/thumbnail.png")
    assert everything["total"] == FRAMES_PER_SITE and len(everything["frames"]) == 5
    assert newest["scored_at"] >= everything["frames"][-1]["scored_at"]
    assert {f["message_id"] for f in second["frames"]}.isdisjoint(
        f["message_id"] for f in everything["frames"]
    )
    assert bad["total"] == 9 and all(f["label"] == "bad" for f in bad["frames"])
    assert bad["frames"][0]["reasons"] == ["seeing", "transparency"]
    assert cloudy["total"] == 9 and trailed["total"] == 0
    assert recent["total"] == FRAMES_PER_SITE
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content.startswith(PNG_SIGNATURE)


async def test_metrics_against_time_cover_the_night_so_far(http):
    series = (await http.get("/api/sites/east/metrics")).json()
    assert len(series["times"]) == FRAMES_PER_SITE and series["times"] == sorted(series["times"])
    assert series["labels"].count("bad") == 9 and not series["truncated"]
    assert max(series["fwhm_arcsec"]) == pytest.approx(4.2)


async def test_the_terminator_puts_the_sun_on_the_day_side(http):
    day_night = (await http.get("/api/terminator")).json()
    assert -23.5 <= day_night["sun_lat_deg"] <= 23.5
    assert len(day_night["night_lon_deg"]) == len(day_night["night_lat_deg"]) > 100


async def test_the_night_report_counts_frames_by_label_and_cause(http):
    report = (await http.get("/api/night")).json()
    by_site = {s["site_id"]: s for s in report["sites"]}
    fleet = report["fleet"]
    assert by_site["east"]["frames_by_label"] == {"good": 2, "medium": 1, "bad": 9}
    assert by_site["east"]["frames_by_reason"]["seeing"] == 9
    assert by_site["north"]["candidates"] == 1 and fleet["candidates"] == 2
    assert fleet["frames"] == 3 * FRAMES_PER_SITE
    assert fleet["hours_on_sky"] == pytest.approx(3 * 11 * 2 / 60)
    one_site = (await http.get("/api/night", params={"site": "south"})).json()
    assert [s["site_id"] for s in one_site["sites"]] == ["south"]


async def test_the_night_report_downloads_as_csv(http):
    answer = await http.get("/api/night", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert [r["site_id"] for r in rows] == ["east", "north", "south", "fleet"]
    assert rows[0]["bad"] == "9" and rows[0]["reason_transparency"] == "9"
    assert rows[-1]["frames"] == str(3 * FRAMES_PER_SITE)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/sites/east/frames", {"limit": 100_000}, "limit"),
        ("/api/sites/east/frames", {"limit": "many"}, "limit"),
        ("/api/sites/east/frames", {"offset": -1}, "offset"),
        ("/api/sites/east/frames", {"label": "ugly"}, "label"),
        ("/api/sites/east/frames", {"reason": "gremlins"}, "reason"),
        ("/api/sites/east/frames", {"since": "yesterday"}, "since"),
        ("/api/sites/east/frames", {"until": "2026-12-03T21:00"}, "until"),  # no time zone
        ("/api/sites/east/metrics", {"since": "2026-12-03T21:00"}, "since"),
        ("/api/sites/east/quality", {"hours": 0}, "hours"),
        ("/api/night", {"date": "2026-13-45"}, "date"),
        ("/api/night", {"format": "xml"}, "format"),
        ("/api/night", {"site": "../etc"}, "site"),
    ],
)
async def test_malformed_query_parameters_are_refused_naming_the_field(
    http, store, path, params, field
):
    answer = await http.get(path, params=params)
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", field]]
    assert "Traceback" not in answer.text
    with store.connect() as conn:
        frames = conn.execute(select(func.count()).select_from(FrameScoreRow)).scalar_one()
    assert frames == 3 * FRAMES_PER_SITE


@pytest.mark.parametrize(
    "path",
    [
        "/api/sites/nowhere",
        "/api/sites/nowhere/frames",
        "/api/sites/nowhere/metrics",
        "/api/sites/nowhere/quality",
        "/api/frames/no-such-frame/thumbnail.png",
    ],
)
async def test_unknown_sites_and_frames_are_404_with_a_message(http, path):
    answer = await http.get(path)
    assert answer.status_code == 404
    assert "no-such-frame" in answer.json()["detail"] or "'nowhere'" in answer.json()["detail"]


async def test_an_unknown_site_in_the_night_report_is_404(http):
    answer = await http.get("/api/night", params={"site": "nowhere"})
    assert answer.status_code == 404 and "'nowhere'" in answer.json()["detail"]

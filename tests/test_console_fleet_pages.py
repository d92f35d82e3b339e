"""The fleet, site and night pages in headless Chromium on a seeded fleet (real protos messages
published to a real nats-server and ingested by a running coordinator): the map and the site
table, live; a bad frame with its reasons and thumbnail; the night report and its CSV download.
Each page is screenshotted at 1,280 x 800 into `test-artifacts/console/`, must fit that width,
and any browser console error fails the test."""

import csv
import io

import pytest

from coordinator.service import Coordinator
from fleetbus.client import publish_all
from protos import QualityLabel
from protos.base import utc_now
from tests.browsers import SCREENSHOTS, chromium_page, fits_the_width
from tests.console_fleets import FRAMES_PER_SITE, fleet_messages
from tests.coordinators import coordinator_settings, eventually, make_score

FLEET_FRAMES = 3 * FRAMES_PER_SITE


@pytest.fixture
async def console(nats_server, fleet_bus, tmp_path):
    """A running coordinator that has ingested the seeded fleet; its console's URL."""
    running = Coordinator(
        coordinator_settings(nats_server.url, f"sqlite:///{tmp_path / 'pages.sqlite3'}")
    )
    await running.start()
    try:
        _, js = fleet_bus
        await publish_all(js, fleet_messages())
        await eventually(lambda: running.summary().frames == FLEET_FRAMES)
        yield running
    finally:
        await running.stop()


async def test_the_fleet_page_shows_the_sites_on_the_map_live(console, fleet_bus):
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await page.goto(console.console_url)
        await page.wait_for_selector("#live.online")
        await page.wait_for_function("document.querySelectorAll('#sites tbody tr').length === 3")
        statuses = await page.locator("#sites tbody td .status").all_inner_texts()
        assert statuses == ["weather", "online", "online"]  # east: 9 of its 12 frames bad
        await page.wait_for_selector("#map .scattergeo")
        traces = await page.evaluate("document.getElementById('map').data.map(t => t.name)")
        assert traces[:2] == ["night side", "Sun overhead"] and "weather" in traces
        alert = page.locator("#alerts a").first
        assert await alert.get_attribute("href") == "/sites/east?label=bad"
        assert await fits_the_width(page)
        await page.screenshot(path=SCREENSHOTS / "fleet-1280x800.png")

        _, js = fleet_bus
        await publish_all(js, [make_score("north", 99, QualityLabel.GOOD, when=utc_now())])
        await page.wait_for_function(
            "document.querySelector('#sites tr[data-site=north] td:nth-child(4)')"
            ".textContent === '13'"
        )
        await alert.click()
        await page.wait_for_url("**/sites/east?label=bad")
        await page.wait_for_selector("#frames tbody tr.row-bad")
    assert errors == []


async def test_the_site_page_shows_a_bad_frame_with_its_reasons_and_thumbnail(console):
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await page.goto(f"{console.console_url}/sites/east?label=bad")
        await page.wait_for_selector("#frames tbody tr.row-bad")
        assert await page.locator("#frame-count").inner_text() == "9 matching"
        first = page.locator("#frames tbody tr").first
        assert await first.locator(".reasons").inner_text() == "seeing, transparency"
        assert await first.locator(".label-bad").inner_text() == "bad"
        thumbnail = first.locator("img")
        await thumbnail.scroll_into_view_if_needed()
        await page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=await thumbnail.element_handle()
        )
        night = await page.locator("#night").inner_text()
        assert "Astronomical dusk" in night and "Moon illuminated" in night
        assert "cloud cover" in await page.locator("#facts").inner_text()
        await page.wait_for_selector("#metrics-plot .scatterlayer .point")
        titles = await page.locator(
            "#metrics-plot :is(.ytitle, .y2title, .y3title)"
        ).all_text_contents()
        assert titles == ["seeing (″)", "background (ADU)", "transparency"]
        assert await fits_the_width(page)
        await page.screenshot(path=SCREENSHOTS / "site-1280x800.png")

        await page.select_option("#f-label", "")
        await page.select_option("#f-limit", "20")
        await page.click("#filters button[type=submit]")
        await page.wait_for_function(
            f"document.querySelector('#frame-count').textContent === '{FRAMES_PER_SITE} matching'"
        )
        assert "label=bad" not in page.url
    assert errors == []


async def test_the_night_report_shows_every_site_and_downloads_as_csv(console):
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await page.goto(f"{console.console_url}/night")
        await page.wait_for_function(
            "document.querySelectorAll('#night-table tbody tr').length === 4"
        )
        fleet = page.locator("#night-table tr.fleet td")
        assert await fleet.nth(5).inner_text() == str(FLEET_FRAMES)
        east = await page.locator("#night-table tr[data-site=east]").inner_text()
        assert "seeing 9" in east and "transparency 9" in east
        await page.wait_for_selector("#labels-plot .bars")
        assert await fits_the_width(page)
        await page.screenshot(path=SCREENSHOTS / "night-1280x800.png")

        async with page.expect_download() as download_info:
            await page.click("#export-csv")
        download = await download_info.value
        rows = list(csv.DictReader(io.StringIO((await download.path()).read_text())))
        assert download.suggested_filename.endswith(".csv")
        assert [r["site_id"] for r in rows] == ["east", "north", "south", "fleet"]
        assert rows[-1]["frames"] == str(FLEET_FRAMES) and rows[0]["bad"] == "9"
    assert errors == []

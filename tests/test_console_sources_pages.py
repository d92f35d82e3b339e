"""The candidate, source and follow-up pages in headless Chromium on a seeded store behind a
running coordinator: an operator saves a candidate and finds it as a source; the source page
draws its light curve, cutouts, follow-up history and why-this-site; a follow-up is requested
from the source page and cancelled from the queue. End to end (slow): a real coordinator and a
real site agent driving Alpaca simulators over NATS; a follow-up requested on the page is
observed and shows done, and a cancel from the queue stops another at the site. Each page is
screenshotted at 1,280 x 800 into `test-artifacts/console/` (git-ignored), and any browser
console error fails the test."""

import asyncio

import pytest
from playwright.async_api import Page
from sqlalchemy import select

from coordinator.service import Coordinator, open_store
from coordinator.store.tables import Site, table_of
from protos import CameraConfig
from tests.browsers import SCREENSHOTS, chromium_page, fits_the_width
from tests.console_sources import UPPER_LIMIT_MAG, seed_source_at, seed_store
from tests.coordinators import add_console_user, coordinator_settings, eventually
from tests.site_agents import running_agent, site_settings
from tests.site_topology import running_hub
from tests.telescopes import (
    HORIZON_LIMIT_DEG,
    PIXEL_SCALE_ARCSEC,
    night_site,
    overhead_target,
    running_telescope,
)

SITE = "obs"
CAMERA = CameraConfig(
    pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
    gain_e_per_adu=1.5,
    read_noise_e=6.0,
    saturation_adu=60000.0,
    width_px=256,
    height_px=256,
)
"""The sky camera's, as the site describes itself to the fleet (its location and camera)."""
CLEAR_FRAMES = 40
"""The site's night so far: frames scored good, and the coordinator's weather window, so the
sky camera's sparse test frames (graded bad: two stars) do not make it a weather site, which
the dispatcher would take the follow-up away from."""
SITE_TIMEOUT_MS = 150_000
"""How long the page may wait for the site: a slew, exposures, readouts and scoring."""


@pytest.fixture
async def console(nats_server, tmp_path):
    """A running coordinator over the seeded store; (coordinator, the source's target id)."""
    url = f"sqlite:///{tmp_path / 'sources-pages.sqlite3'}"
    seeded = open_store(url)
    source_id = seed_store(seeded)
    seeded.dispose()
    running = Coordinator(coordinator_settings(nats_server.url, url))
    await running.start()
    try:
        yield running, source_id
    finally:
        await running.stop()


async def log_in_as_operator(page: Page, coordinator: Coordinator) -> None:
    """Log the page's browser in as an operator (the session cookie), as the form does."""
    assert coordinator.engine is not None
    token = add_console_user(coordinator.engine, "olga", "operator")
    answer = await page.request.post(
        f"{coordinator.console_url}/api/login", data={"name": "olga", "token": token}
    )
    assert answer.ok, await answer.text()


def site_is_online(coordinator: Coordinator, site_id: str) -> bool:
    """Whether the coordinator has the site's location and a heartbeat (what planning needs)."""
    assert coordinator.engine is not None
    sites = table_of(Site)
    with coordinator.engine.connect() as conn:
        row = conn.execute(
            select(sites.c.lat_deg, sites.c.heartbeat_at).where(sites.c.site_id == site_id)
        ).one_or_none()
    return row is not None and row.lat_deg is not None and row.heartbeat_at is not None


async def request_from_the_page(page: Page, *, count: int, exptime_s: int) -> str:
    """Fill in and send the source page's follow-up form; the new request's id."""
    await page.wait_for_selector("#source-page[data-loaded]")
    await page.evaluate("document.querySelector('#message').textContent = ''")
    await page.fill("#fu-filter", "r")
    await page.fill("#fu-count", str(count))
    await page.fill("#fu-exptime", str(exptime_s))
    await page.click("#followup-form button")
    await page.wait_for_function("document.querySelector('#message').textContent !== ''")
    answer = await page.locator("#message").inner_text()
    assert answer.endswith("requested"), answer
    return answer.split()[1]


async def test_an_operator_saves_a_candidate_and_finds_it_as_a_source(console):
    coordinator, source_id = console
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await page.goto(f"{coordinator.console_url}/candidates")
        await page.wait_for_selector("#candidates .card .stamps.drawn")
        assert await page.locator("#candidates .card").count() == 4
        first = page.locator("#candidates .card").first
        assert await first.locator("figcaption").all_inner_texts() == ["new", "ref", "diff"]
        assert await first.locator(".nearby a").get_attribute("href") == f"/sources/{source_id}"
        assert not await first.locator("button.save").is_visible()  # reading needs no login
        assert await fits_the_width(page)

        await log_in_as_operator(page, coordinator)
        await page.reload()
        await page.wait_for_selector("#candidates .card .stamps.drawn")
        await page.screenshot(path=SCREENSHOTS / "candidates.png")
        saved_id = await first.get_attribute("data-target-id")
        await first.locator("button.save").click()
        await page.wait_for_function("document.querySelector('#count').textContent === '3 to scan'")
        assert await page.locator("#candidates .card").count() == 3

        await page.goto(f"{coordinator.console_url}/sources/{saved_id}")
        await page.wait_for_selector("#source-page[data-loaded] #detections .stamps.drawn")
        assert (await page.locator("#status").inner_text()).startswith("source by user:olga")
    assert errors == []


async def test_the_source_page_draws_the_light_curve_and_requests_a_followup(console):
    coordinator, source_id = console
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await log_in_as_operator(page, coordinator)
        await page.goto(f"{coordinator.console_url}/sources/{source_id}")
        await page.wait_for_selector("#source-page[data-loaded]")
        await page.wait_for_function(
            "document.querySelectorAll('#detections .stamps.drawn').length === 4"
        )
        traces = await page.evaluate(
            "document.getElementById('lightcurve').data.map(t => [t.name, t.y])"
        )
        assert traces == [
            ["r · north", [18.2, 17.9]],
            ["g · south", [18.6, 18.3]],
            ["upper limits", [UPPER_LIMIT_MAG]],
        ]
        assert "± 0.1" in await page.locator("#facts").inner_text()  # the fused position's error
        done = page.locator(f".followup[data-request-id='t{source_id}-1']")
        assert await done.locator(".history li").count() == 4
        assert "seeing 1.4 at south" in await done.locator(".why").inner_text()
        assert "at_night" in await done.locator(".options tbody tr:not(.chosen)").inner_text()
        curves = await done.locator(".airmass").evaluate("plot => plot.data.map(t => t.name)")
        assert curves == ["south", "north", "planned start"]
        assert await fits_the_width(page)
        await page.screenshot(path=SCREENSHOTS / "source.png", full_page=True)

        await page.fill("#comment-text", "brightening in r")
        await page.click("#comment-form button")
        await page.wait_for_function(
            "document.querySelector('#comments').textContent.includes('brightening in r')"
        )
        await page.fill("#fu-filter", "g")
        await page.fill("#fu-count", "5")
        await page.click("#followup-form button")
        await page.wait_for_function(
            "document.querySelector('#message').textContent.includes('requested')"
        )
        requested = (await page.locator("#message").inner_text()).split()[1]
        asked = page.locator(f".followup[data-request-id='{requested}']")
        await asked.wait_for()
        assert "5 \N{MULTIPLICATION SIGN} 60 s in g" in await asked.inner_text()

        await page.goto(f"{coordinator.console_url}/followups?state=open")
        row = page.locator(f"#queue tr[data-request-id='{requested}']")
        await row.wait_for()
        await page.screenshot(path=SCREENSHOTS / "followups.png")
        await row.locator("button.cancel").click()
        await page.wait_for_function(
            f"document.querySelector(\"#queue tr[data-request-id='{requested}'] .state\")"
            ".textContent === 'cancelling'"
        )
    assert errors == []


@pytest.mark.slow  # the Alpaca simulators and the sky camera take ~30 s to start
async def test_a_followup_from_the_page_is_observed_at_a_real_site_and_a_cancel_stops_one(
    tmp_path,
):
    site = night_site()
    target = overhead_target(site)
    url = f"sqlite:///{tmp_path / 'end-to-end.sqlite3'}"
    source_id = seed_source_at(
        open_store(url), SITE, target.ra_deg, target.dec_deg, good_frames=CLEAR_FRAMES
    )
    errors: list[str] = []
    with running_hub(tmp_path / "hub") as hub, running_telescope(tmp_path / "scope", site) as scope:
        settings = coordinator_settings(
            hub.url,
            url,
            followup_min_confidence=1.0,
            sites=[SITE],
            weather_window_frames=CLEAR_FRAMES,
        )
        agent_settings = site_settings(
            tmp_path,
            SITE,
            hub,
            alpaca=scope.devices(),
            location=site,
            camera=CAMERA,
            pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
            horizon_limit_deg=HORIZON_LIMIT_DEG,
            search_transients=False,
        )
        coordinator = Coordinator(settings)
        await coordinator.start()
        try:
            async with running_agent(agent_settings), chromium_page(errors) as page:
                await eventually(lambda: site_is_online(coordinator, SITE), timeout_s=60)
                await log_in_as_operator(page, coordinator)
                await page.goto(f"{coordinator.console_url}/sources/{source_id}")
                observed = await request_from_the_page(page, count=2, exptime_s=1)
                done = page.locator(f".followup[data-request-id='{observed}'] .state")
                await done.filter(has_text="done").wait_for(timeout=SITE_TIMEOUT_MS)
                progress = page.locator(f".followup[data-request-id='{observed}'] .progress")
                assert await progress.inner_text() == "2/2 exposures"

                stopped = await request_from_the_page(page, count=5, exptime_s=4)
                await page.goto(f"{coordinator.console_url}/followups?state=open")
                row = page.locator(f"#queue tr[data-request-id='{stopped}']")
                await row.locator(".progress", has_text="1/5").wait_for(timeout=SITE_TIMEOUT_MS)
                await row.locator("button.cancel").click()
                await page.goto(f"{coordinator.console_url}/followups?state=cancelled")
                await page.locator(f"#queue tr[data-request-id='{stopped}']").wait_for(
                    timeout=SITE_TIMEOUT_MS
                )
                await page.screenshot(path=SCREENSHOTS / "followups-end-to-end.png")
                await asyncio.sleep(2 * 4)  # longer than an aborted exposure would have run
        finally:
            await coordinator.stop()
    taken = {r: list(agent_settings.watch_dir.glob(f"{SITE}-{r}-*")) for r in (observed, stopped)}
    assert len(taken[observed]) == 2
    assert 1 <= len(taken[stopped]) <= 2  # the one done, and at most the one aborted
    assert errors == []

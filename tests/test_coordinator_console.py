"""The ops console: its JSON API and access rules, live server-sent events, and the page in a
real headless Chromium (Debian's, driven by Playwright: a viewer logs in and may not act, an
operator logs in and may), with screenshots kept in `test-artifacts/console/`. Logins,
sessions, CSRF, proxies and the action log in detail: `test_console_access.py`."""

import asyncio
import json

import httpx
import pytest

from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.service import Coordinator, open_store
from coordinator.settings import CoordinatorSettings
from fleetbus.client import publish_all
from protos import QualityLabel
from protos.base import utc_now
from tests.browsers import SCREENSHOTS, chromium_page
from tests.coordinators import (
    add_console_user,
    coordinator_settings,
    eventually,
    make_candidate,
    make_config,
    make_heartbeat,
    make_score,
)


def fleet_messages():
    """Three sites with frames, and one transient seen by two of them."""
    messages = []
    for n, (site, lat, lon) in enumerate(
        (("north", 28.7, -17.9), ("south", -29.3, -70.7), ("east", 31.0, 78.9))
    ):
        messages += [make_config(site, lat, lon), make_heartbeat(site)]
        labels = [QualityLabel.GOOD] * (6 - 2 * n) + [QualityLabel.BAD] * (2 * n)
        messages += [
            make_score(site, i, label, fwhm_arcsec=1.5 + n) for i, label in enumerate(labels)
        ]
    messages += [
        make_candidate("north", "n-1", 150.0, 20.0, real_bogus=0.9, flux_adu=4000.0),
        make_candidate("south", "s-1", 150.0, 20.0 + 0.5 / 3600, real_bogus=0.8, flux_adu=5200.0),
    ]
    return messages


@pytest.fixture
def store(tmp_path):
    """A SQLite store holding `fleet_messages()`, written the way ingest writes them."""
    engine = open_store(f"sqlite:///{tmp_path / 'console.sqlite3'}")
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    by_kind: dict[str, list] = {}
    for message in fleet_messages():
        by_kind.setdefault(message.KIND, []).append(message)
    for kind, messages in by_kind.items():
        writer.write(kind, messages, utc_now())
    yield engine
    engine.dispose()


def client(engine, *, host: str, **settings: object) -> httpx.AsyncClient:
    app = create_console(engine, CoordinatorSettings(**settings))
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console")


async def test_read_views_are_open_on_loopback_and_show_the_fleet(store):
    async with client(store, host="127.0.0.1") as http:
        summary = (await http.get("/api/summary")).json()
        targets = (await http.get("/api/targets")).json()
        detail = (await http.get(f"/api/targets/{targets[0]['target_id']}")).json()
        cutout = (await http.get(f"/api/cutouts/{detail['detections'][0]['message_id']}")).json()
        models = (await http.get("/api/models")).json()
        quality = (await http.get("/api/sites/east/quality", params={"bin_s": 3600})).json()
    assert [s["site_id"] for s in summary["sites"]] == ["east", "north", "south"]
    assert {s["site_id"]: s["frames"] for s in summary["sites"]} == {
        "north": 6,
        "south": 6,
        "east": 6,
    }
    assert len(targets) == 1 and targets[0]["sites"] == ["north", "south"]
    assert [d["flux_adu"] for d in detail["detections"]] == [4000.0, 5200.0]
    assert len(cutout["difference"]) == 21 and cutout["new"][0][0] == 2.0
    assert {m["site_id"]: m["scoring_model"] for m in models}["north"] == "quality v1"
    assert sum(b["frames"] for b in quality) == 6
    assert sum(b["fraction_bad"] * b["frames"] for b in quality) == pytest.approx(4)


async def test_reads_from_other_hosts_need_a_console_user(store):
    token = add_console_user(store, "vera", "viewer")
    async with client(store, host="192.0.2.10") as http:
        refused = await http.get("/api/summary")
        allowed = await http.get("/api/summary", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and "log in" in refused.json()["detail"]
    assert allowed.status_code == 200


async def test_loopback_reads_can_be_turned_off_for_a_proxy_sidecar(store):
    async with client(store, host="127.0.0.1", loopback_reads=False) as http:
        assert (await http.get("/api/summary")).status_code == 401


async def test_actions_need_an_operator_and_change_what_the_console_shows(store):
    token = add_console_user(store, "olga", "operator")
    async with client(store, host="127.0.0.1") as http:
        target = (await http.get("/api/targets")).json()[0]["target_id"]
        path = f"/api/targets/{target}/priority"
        assert (await http.post(path, json={"priority": 1})).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert (await http.post(path, json={"priority": 1}, headers=wrong)).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert (await http.post(path, json={"priority": 1}, headers=auth)).status_code == 200
        marked = await http.post(
            f"/api/targets/{target}/mark", json={"mark": "dismissed"}, headers=auth
        )
        assert marked.status_code == 200
        shown = (await http.get("/api/targets")).json()[0]
    assert (shown["priority"], shown["mark"]) == (1, "dismissed")


@pytest.fixture
async def live_coordinator(nats_server, tmp_path):
    running = Coordinator(
        coordinator_settings(nats_server.url, f"sqlite:///{tmp_path / 'live.sqlite3'}")
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_server_sent_events_carry_new_frames(live_coordinator, fleet_bus):
    _, js = fleet_bus
    async with (
        httpx.AsyncClient(base_url=live_coordinator.console_url, timeout=10) as http,
        http.stream("GET", "/api/events") as events,
    ):
        lines = events.aiter_lines()

        async def next_summary():
            async for line in lines:
                if line.startswith("data: "):
                    return json.loads(line.removeprefix("data: "))
            raise AssertionError("event stream ended")

        assert (await asyncio.wait_for(next_summary(), 10))["frames"] == 0
        await publish_all(js, [make_score("north", 1), make_heartbeat("north")])
        while (summary := await asyncio.wait_for(next_summary(), 10))["frames"] == 0:
            pass
    assert summary["sites"][0]["site_id"] == "north"


async def log_in(page, name: str, token: str) -> None:
    """Fill in and send the page's login form (after a logout the page reloads: wait for it)."""
    await page.wait_for_selector("#login:not([hidden])")
    await page.fill("#login-name", name)
    await page.fill("#login-token", token)
    await page.click("#login button[type=submit]")


async def test_console_page_in_chromium_shows_the_fleet_and_logs_in(live_coordinator, fleet_bus):
    _, js = fleet_bus
    await publish_all(js, fleet_messages())
    await eventually(lambda: live_coordinator.summary().frames == 18)
    errors: list[str] = []
    async with chromium_page(errors) as page:
        await page.goto(live_coordinator.console_url)
        await page.wait_for_selector("#live.online")
        await page.wait_for_function("document.querySelectorAll('#sites tbody tr').length === 3")
        statuses = await page.locator("#sites tbody td .status").all_inner_texts()
        assert statuses == ["weather", "online", "online"]  # east: 4 of 6 frames bad
        await page.wait_for_selector("#map .scattergeo")
        await page.screenshot(path=SCREENSHOTS / "fleet.png", full_page=True)

        # A viewer logs in and sees the fleet; a wrong token is refused; an operator logs in.
        viewer = add_console_user(live_coordinator.engine, "vera", "viewer")
        operator = add_console_user(live_coordinator.engine, "olga", "operator")
        await log_in(page, "vera", viewer)
        await page.wait_for_selector("#account:not([hidden])")
        assert await page.locator("#user").inner_text() == "vera (viewer)"
        assert not await page.evaluate("document.body.classList.contains('may-act')")
        await page.click("#logout")
        await log_in(page, "olga", "not-the-token")
        await page.wait_for_function(
            "document.querySelector('#login-error').textContent.includes('wrong name or token')"
        )
        await log_in(page, "olga", operator)
        await page.wait_for_selector("#account:not([hidden])")
        assert await page.evaluate("document.body.classList.contains('may-act')")
    # the refused login answers 401, which the browser reports; nothing else may fail
    assert [e for e in errors if "401" not in e] == []
    assert (SCREENSHOTS / "fleet.png").stat().st_size > 10_000

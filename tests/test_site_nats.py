"""Store and forward: a site's leaf server keeps what the agent publishes while the hub is
away, and the hub's FLEET stream gets every message exactly once when the link returns."""

import asyncio
import subprocess
import time

from typer.testing import CliRunner

from fleetbus.client import connect
from fleetbus.hub import keep_sources_flowing
from fleetbus.server import nats_server_binary
from fleetbus.tasks import cancel_and_wait
from protos import FrameScore, LinkState
from protos.streams import FLEET_STREAM, HUB_JS_DOMAIN, site_stream_name
from site_agent.publisher import SitePublisher
from skyfleet.cli import app
from tests.examples import frame_score
from tests.site_topology import (
    join,
    running_hub,
    running_site_server,
    stored_messages,
    wait_for_stored,
)

runner = CliRunner()


def _scores(site_id: str, start: int, stop: int) -> list[FrameScore]:
    return [frame_score(site_id, f"{index:064x}") for index in range(start, stop)]


async def test_messages_published_during_an_outage_arrive_once_when_the_link_returns(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        await join(hub, ["east"])
        hub_nc = await connect(hub.url, name="test-hub")
        with running_site_server(tmp_path / "east", "east", hub) as site:
            nc = await connect(site.url, name="test-site")
            publisher = SitePublisher(nc, "east", hub_js_domain=HUB_JS_DOMAIN, probe_timeout_s=0.5)
            assert await publisher.prepare() == site_stream_name("east")
            for score in _scores("east", 0, 20):
                await publisher.send(score)
            assert await publisher.probe_link() is LinkState.UP

            await hub_nc.close()
            hub.stop()  # the link is cut: the site keeps acknowledging locally
            assert await publisher.probe_link() is LinkState.DOWN
            for score in _scores("east", 20, 60):
                await publisher.send(score)
            for score in _scores("east", 0, 10):  # resends after a timeout, say
                await publisher.send(score)

            hub.start()
            back = time.monotonic()
            hub_nc = await connect(hub.url, name="test-hub")
            hub_js = hub_nc.jetstream()
            keeper = asyncio.create_task(keep_sources_flowing(hub_nc, every_s=0.5))
            try:
                assert await wait_for_stored(hub_js, 60, timeout_s=30) == 60
            finally:
                await cancel_and_wait([keeper], timeout_s=10)
            assert time.monotonic() - back < 10  # not nats-server's own 40 s retry back-off
            assert await publisher.probe_link() is LinkState.UP
            await nc.close()
        ids = [m.message_id for m in await stored_messages(hub_js)]
        await hub_nc.close()
    assert sorted(ids) == sorted(s.message_id for s in _scores("east", 0, 60))


async def test_a_site_joining_later_keeps_the_sources_of_the_others(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        await join(hub, ["east", "west"])
        await join(hub, ["north"])
        nc = await connect(hub.url, name="test")
        config = (await nc.jetstream().stream_info(FLEET_STREAM)).config
        await nc.close()
    assert not config.subjects  # sourced only: a direct capture would store twice
    assert sorted(s.name for s in config.sources) == ["SITE_EAST", "SITE_NORTH", "SITE_WEST"]
    assert {s.external.api for s in config.sources} == {
        "$JS.site-east.API",
        "$JS.site-north.API",
        "$JS.site-west.API",
    }


def test_generated_configurations_are_accepted_by_nats_server(tmp_path):
    hub_conf, site_conf = tmp_path / "hub.conf", tmp_path / "site.conf"
    keys = tmp_path / "keys"
    made = runner.invoke(app, ["fleet", "credentials", "--out", str(keys), "--site", "la-silla"])
    assert made.exit_code == 0, made.output
    hub_run = runner.invoke(
        app,
        ["site", "nats-config", "--hub", "--credentials", str(keys), "-o", str(hub_conf)],
    )
    site_run = runner.invoke(
        app,
        [
            "site",
            "nats-config",
            "--site-id",
            "la-silla",
            "--hub-leaf-url",
            "nats-leaf://hub.example.org:7422",
            "--nkey-file",
            str(keys / "site-la-silla.nk"),
            "--store-dir",
            str(tmp_path),
        ],
    )
    assert hub_run.exit_code == 0 and site_run.exit_code == 0
    site_conf.write_text(site_run.stdout)
    assert 'domain: "site-la-silla"' in site_run.stdout
    assert "nats-leaf://hub.example.org:7422" in site_run.stdout
    assert 'listen: "127.0.0.1:' in site_run.stdout  # the site's bus is for its own computer
    assert (keys / "site-la-silla.nk").read_text().strip() in site_run.stdout
    for conf in (hub_conf, site_conf):
        check = subprocess.run(
            [nats_server_binary(), "-t", "-c", conf], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr


def test_a_bus_without_identities_must_be_asked_for_out_loud(tmp_path):
    hub = runner.invoke(app, ["site", "nats-config", "--hub", "--store-dir", str(tmp_path)])
    assert hub.exit_code == 2 and "--credentials" in hub.output
    site = runner.invoke(
        app, ["site", "nats-config", "--site-id", "a", "--hub-leaf-url", "nats-leaf://h:7422"]
    )
    assert site.exit_code == 2 and "--nkey-file" in site.output
    insecure = runner.invoke(
        app, ["site", "nats-config", "--hub", "--insecure", "--store-dir", str(tmp_path)]
    )
    assert insecure.exit_code == 0 and "anyone who reaches this hub" in insecure.output


def test_nats_config_needs_exactly_one_role():
    result = runner.invoke(app, ["site", "nats-config"])
    assert result.exit_code == 2
    assert "exactly one" in result.output

"""Fleet identity against a real hub and real leaf servers: each site's key lets it deliver its
own data and read its own commands, nothing else; revoking a site takes effect by a reload."""

import asyncio
import contextlib
import json
import stat
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from fleetbus.hub import ensure_hub_streams, hub_server_config, keep_sources_flowing
from fleetbus.hub_identity import IdentityKeeper
from fleetbus.identity import (
    CredentialsError,
    FleetIdentities,
    issue_credentials,
    read_seed,
    revoke_site,
)
from fleetbus.process_supervisor import ProcessSupervisor
from fleetbus.server import EmbeddedNats
from fleetbus.streams import ensure_streams
from fleetbus.tasks import cancel_and_wait
from protos.streams import (
    COMMAND_STREAM,
    FLEET_STREAM,
    HUB_JS_DOMAIN,
    site_command_consumer,
    site_stream,
)
from site_agent.site_nats import site_server_config
from tests.site_topology import leaf_links, wait_for

REFUSAL_WAIT_S = 2.0
"""A forbidden request is never answered: this long without an answer is a refusal."""


def seed(folder: Path, name: str) -> str:
    return read_seed(folder / f"{name}.nk")


@contextmanager
def secured_hub(folder: Path, store: Path) -> Iterator[EmbeddedNats]:
    config = hub_server_config(store, authorization_file=folder / "hub-auth.conf")
    with EmbeddedNats(config) as hub:
        yield hub


@contextmanager
def site_server(site_id: str, store: Path, hub: EmbeddedNats, seed_text: str | None):
    config = site_server_config(
        site_id, store, hub_leaf_url=hub.config.leaf_url, leaf_nkey_seed=seed_text
    )
    with EmbeddedNats(config) as server:
        yield server


@asynccontextmanager
async def client(url: str, nkey_seed: str | None = None) -> AsyncIterator[tuple[Client, list]]:
    """A connection and the errors the server sent it (permission violations arrive there)."""
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    nc = await nats.connect(url, nkeys_seed_str=nkey_seed, error_cb=on_error)
    try:
        yield nc, errors
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def publish_site_frames(server: EmbeddedNats, site_id: str, count: int) -> None:
    async with client(server.url) as (nc, _):
        js = nc.jetstream()
        await ensure_streams(js, [site_stream(site_id)])
        for i in range(count):
            await js.publish(
                f"fleet.site.{site_id}.frame.score",
                b"{}",
                headers={"Nats-Msg-Id": f"{site_id}-{i}"},
            )


def test_credentials_are_written_once_and_kept(tmp_path):
    first = issue_credentials(tmp_path, ["a"])
    assert sorted(first.created) == ["coordinator", "operator", "release", "site-a", "training"]
    seed_file = tmp_path / "site-a.nk"
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    site_a_seed = seed_file.read_text()
    second = issue_credentials(tmp_path, ["a", "b"])
    assert second.created == ["site-b"]
    assert seed_file.read_text() == site_a_seed
    assert FleetIdentities.load(tmp_path).site_ids() == ["a", "b"]
    assert site_a_seed.strip() not in (tmp_path / "hub-auth.conf").read_text()


def test_bad_site_ids_and_seeds_are_refused_with_the_reason(tmp_path):
    with pytest.raises(CredentialsError, match="not a site id"):
        issue_credentials(tmp_path, ["A.b"])
    (tmp_path / "broken.nk").write_text("SUAAAA\n")
    with pytest.raises(CredentialsError, match=r"broken\.nk: not a NATS user nkey seed"):
        read_seed(tmp_path / "broken.nk")
    with pytest.raises(CredentialsError, match="cannot read"):
        read_seed(tmp_path / "missing.nk")
    with pytest.raises(CredentialsError, match="no site 'zz'"):
        revoke_site(tmp_path, "zz")


async def test_each_site_delivers_only_its_own_data_through_its_link(tmp_path):
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a", "b"])
    with (
        secured_hub(keys, tmp_path / "hub") as hub,
        site_server("a", tmp_path / "a", hub, seed(keys, "site-a")) as site_a,
        site_server("b", tmp_path / "b", hub, seed(keys, "site-b")) as site_b,
    ):
        await wait_for(lambda: leaf_links(hub) == ["site-a", "site-b"])
        async with client(hub.url, seed(keys, "coordinator")) as (coordinator, _):
            js = coordinator.jetstream()
            await ensure_hub_streams(js, ["a", "b"])
            keeper = asyncio.create_task(keep_sources_flowing(coordinator))
            try:
                await publish_site_frames(site_a, "a", 5)
                await publish_site_frames(site_b, "b", 3)
                async with client(site_a.url) as (local_a, _):
                    # an impostor on site a's computer speaking for site b
                    await local_a.publish("fleet.site.b.frame.score", b"forged")
                    await local_a.flush()
                for _ in range(75):
                    if (await js.stream_info(FLEET_STREAM)).state.messages >= 8:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # a forged message would have arrived by now
                assert (await js.stream_info(FLEET_STREAM)).state.messages == 8
                async with client(site_b.url) as (local_b, _):
                    stored_b = await local_b.jetstream().stream_info(site_stream("b").name)
                assert stored_b.state.messages == 3
            finally:
                await cancel_and_wait([keeper], timeout_s=10)


async def test_a_site_reads_its_own_commands_and_cannot_touch_anything_else(tmp_path):
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a", "b"])
    with (
        secured_hub(keys, tmp_path / "hub") as hub,
        site_server("a", tmp_path / "a", hub, seed(keys, "site-a")) as site_a,
    ):
        await wait_for(lambda: leaf_links(hub) == ["site-a"])
        async with client(hub.url, seed(keys, "coordinator")) as (coordinator, _):
            js = coordinator.jetstream()
            await ensure_hub_streams(js, ["a"])
            await js.publish("fleet.cmd.a.followup.request", b"{}")
            await js.publish("fleet.cmd.b.followup.request", b"{}")
            async with client(site_a.url) as (local_a, _):
                hub_js = local_a.jetstream(domain=HUB_JS_DOMAIN, timeout=REFUSAL_WAIT_S)
                own = await hub_js.pull_subscribe(
                    "fleet.cmd.a.>",
                    durable=site_command_consumer("a"),
                    stream=COMMAND_STREAM,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
                )
                received = await own.fetch(5, timeout=5)
                assert [m.subject for m in received] == ["fleet.cmd.a.followup.request"]
                for msg in received:
                    await msg.ack()
                refused = {
                    "b's commands": hub_js.pull_subscribe(
                        "fleet.cmd.b.>", durable=site_command_consumer("b"), stream=COMMAND_STREAM
                    ),
                    "purge the fleet": hub_js.purge_stream(FLEET_STREAM),
                    "delete a stream": hub_js.delete_stream(COMMAND_STREAM),
                    "send a command": hub_js.publish("fleet.cmd.b.followup.request", b"{}"),
                }
                for what, attempt in refused.items():
                    with pytest.raises(Exception) as caught:
                        await asyncio.wait_for(attempt, REFUSAL_WAIT_S * 2)
                    assert "ServiceUnavailable" in type(caught.value).__name__ or isinstance(
                        caught.value, TimeoutError | nats.js.errors.NoStreamResponseError
                    ), what
            info = await js.stream_info(COMMAND_STREAM)
            assert info.state.messages == 2  # nothing purged, nothing added


async def test_the_hub_refuses_strangers_and_impostors(tmp_path):
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a", "b"])
    with secured_hub(keys, tmp_path / "hub") as hub:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(hub.url, allow_reconnect=False, connect_timeout=2)
        async with client(hub.url, seed(keys, "coordinator")) as (coordinator, _):
            await ensure_hub_streams(coordinator.jetstream(), ["a", "b"])
        attempts = {
            "site-a": ["fleet.site.b.frame.score", "fleet.cmd.b.followup.request"],
            "coordinator": ["fleet.site.a.frame.score"],
            "operator": ["fleet.cmd.a.followup.request", "$JS.API.STREAM.PURGE.FLEET"],
        }
        for name, subjects in attempts.items():
            async with client(hub.url, seed(keys, name)) as (nc, errors):
                for subject in subjects:
                    await nc.publish(subject, b"{}")
                await nc.flush()
                await wait_for(lambda errors=errors, n=len(subjects): len(errors) >= n, 5)
                assert all("permissions violation" in str(e) for e in errors), (name, errors)
        async with client(hub.url, seed(keys, "site-a")) as (nc, errors):
            await nc.subscribe("fleet.cmd.b.>")
            await nc.flush()
            await wait_for(lambda: len(errors) >= 1, 5)
            assert "permissions violation for subscription" in str(errors[0])


async def test_a_new_site_is_let_in_by_a_reload_and_a_revoked_one_kept_out(tmp_path):
    """Adding a site is a reload: no link drops. nats-server (2.15.1) keeps an established leaf
    link through a reload even when its user is gone, so revoking a site restarts the hub:
    every site's link drops for a moment (store and forward keeps their data), the revoked
    site's stays down."""
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a", "b"])
    site_b_seed = seed(keys, "site-b")
    with (
        secured_hub(keys, tmp_path / "hub") as hub,
        site_server("a", tmp_path / "a", hub, seed(keys, "site-a")),
        site_server("b", tmp_path / "b", hub, site_b_seed),
    ):
        await wait_for(lambda: leaf_links(hub) == ["site-a", "site-b"])
        issue_credentials(keys, ["c"])
        hub.reload()
        with site_server("c", tmp_path / "c", hub, seed(keys, "site-c")):
            await wait_for(lambda: leaf_links(hub) == ["site-a", "site-b", "site-c"])
            revoke_site(keys, "b")
            hub.stop()
            hub.start()
            await wait_for(lambda: leaf_links(hub) == ["site-a", "site-c"])
            await asyncio.sleep(2.0)  # b's leaf server keeps trying; it must stay out
            assert leaf_links(hub) == ["site-a", "site-c"]
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                hub.url, nkeys_seed_str=site_b_seed, allow_reconnect=False, connect_timeout=2
            )


def leaf_ids(hub: EmbeddedNats) -> dict[str, int]:
    """Each linked leaf server's connection id: the same id means the link never dropped."""
    with urllib.request.urlopen(f"{hub.config.monitor_url}/leafz", timeout=5) as answer:
        return {leaf["name"]: leaf["id"] for leaf in json.load(answer).get("leafs") or []}


async def test_the_hub_applies_a_credentials_command_within_seconds(tmp_path):
    """What `skyfleet nats up --credentials DIR` does: its supervisor checks the folder."""
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a", "b"])
    with (
        secured_hub(keys, tmp_path / "hub") as hub,
        site_server("a", tmp_path / "a", hub, seed(keys, "site-a")),
        site_server("b", tmp_path / "b", hub, seed(keys, "site-b")),
    ):
        supervisor = ProcessSupervisor(hub, name="hub", fault=IdentityKeeper(hub, keys))
        watching = asyncio.create_task(supervisor.run())
        try:
            await wait_for(lambda: leaf_links(hub) == ["site-a", "site-b"])
            links_before = leaf_ids(hub)
            issue_credentials(keys, ["c"])
            with site_server("c", tmp_path / "c", hub, seed(keys, "site-c")):
                await wait_for(lambda: leaf_links(hub) == ["site-a", "site-b", "site-c"])
                assert {k: leaf_ids(hub)[k] for k in links_before} == links_before
                assert supervisor.restarts == 0
                revoke_site(keys, "b")
                await wait_for(lambda: leaf_links(hub) == ["site-a", "site-c"])
                assert supervisor.restarts == 1 and "revoked" in (supervisor.last_fault or "")
        finally:
            await cancel_and_wait([watching], timeout_s=10)

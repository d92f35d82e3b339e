"""A flood from one site does not starve the others: real hub with the fleet's credentials, each
site's own leaf server linked with its key, a real coordinator storing into SQLite. Site `flood`
comes in with 10,000 frame scores at once (it joins the hub with them in its stream, as a site
back from an outage or a runaway agent does); site `calm` sends a few meanwhile: calm's are
stored within a bound while flood's backlog is still being stored at its site's rate (with a
WARNING naming the site), and in the end every flood message is stored exactly once."""

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from sqlalchemy import func, select

from coordinator.service import Coordinator
from coordinator.store.tables import FrameScoreRow
from fleetbus.client import MSG_ID_HEADER, connect
from fleetbus.hub import ensure_hub_streams
from fleetbus.identity import COORDINATOR_SEED_FILE, HUB_AUTH_FILE, issue_credentials, read_seed
from fleetbus.server import EmbeddedNats
from fleetbus.streams import ensure_streams
from protos import FrameScore, stable_message_id
from protos.streams import site_stream
from protos.subjects import subject_for
from site_agent.site_nats import site_server_config
from tests.coordinators import coordinator_settings, eventually, make_score, sha
from tests.site_topology import leaf_links, running_hub, wait_for

FLOOD = 10_000
"""Arriving at the hub takes seconds (the hub copies the site's stream), and before each site had
a lane of its own the calm site's scores waited behind whatever of it had arrived first."""
CALM = 5
CALM_BOUND_S = 2.0
"""How long the calm site's scores may take to be stored while the flood is being stored."""
RATE_PER_S = 1_250
"""The per-site rate of the test coordinator, below what it stores on two busy cores: the flood
takes 8 s at it."""


def stored_by_site(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(FrameScoreRow.site_id, func.count()).group_by(FrameScoreRow.site_id)
        ).all()
    return {site: count for site, count in rows}


async def publish_at_site(site: EmbeddedNats, site_id: str, first: int, count: int) -> None:
    """Put `count` frame scores into the site's own stream, as its agent does (without waiting
    for each acknowledgement: the stream's count says when all are there)."""
    template = make_score(site_id, 0)
    nc = await connect(site.url, name=f"agent-{site_id}")
    try:
        js = nc.jetstream()
        stream = site_stream(site_id)
        await ensure_streams(js, [stream])
        expected = (await js.stream_info(stream.name)).state.messages + count
        for i in range(first, first + count):
            digest = sha(site_id, "frame", i)
            score = template.model_copy(
                update={
                    "message_id": stable_message_id(FrameScore.KIND, site_id, digest),
                    "frame": template.frame.model_copy(update={"sha256": digest}),
                }
            )
            data = score.model_dump_json().encode()
            await nc.publish(subject_for(score), data, headers={MSG_ID_HEADER: score.message_id})
        await nc.flush()
        while (await js.stream_info(stream.name)).state.messages < expected:
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


@contextlib.contextmanager
def site_servers(tmp_path: Path, keys: Path, hub: EmbeddedNats, site_ids: list[str]):
    """Each site's own leaf server, its link to the hub authenticated with the site's key."""
    with contextlib.ExitStack() as stack:
        servers = {}
        for site_id in site_ids:
            config = site_server_config(
                site_id,
                tmp_path / site_id,
                hub_leaf_url=hub.config.leaf_url,
                leaf_nkey_seed=read_seed(keys / f"site-{site_id}.nk"),
            )
            servers[site_id] = stack.enter_context(EmbeddedNats(config))
        yield servers


async def test_a_flooding_site_does_not_hold_back_the_others(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger="coordinator")
    keys = tmp_path / "keys"
    issue_credentials(keys, ["flood", "calm"])
    with (
        running_hub(tmp_path / "hub", authorization_file=keys / HUB_AUTH_FILE) as hub,
        site_servers(tmp_path, keys, hub, ["flood", "calm"]) as sites,
    ):
        await wait_for(lambda: leaf_links(hub) == ["site-calm", "site-flood"])
        settings = coordinator_settings(
            hub.url,
            f"sqlite:///{tmp_path / 'coordinator.sqlite3'}",
            nkey_file=keys / COORDINATOR_SEED_FILE,
            sites=["calm"],
            serve_console=False,
            ingest_site_rate_per_s=RATE_PER_S,
            ingest_site_burst=RATE_PER_S,
        )
        coordinator = Coordinator(settings)
        await coordinator.start()
        try:
            await publish_at_site(sites["calm"], "calm", 0, 1)
            await eventually(lambda: stored_by_site(coordinator.engine).get("calm") == 1)
            await publish_at_site(sites["flood"], "flood", 0, FLOOD)

            nc = await connect(hub.url, name="join", nkey_seed=read_seed(keys / "coordinator.nk"))
            try:
                await ensure_hub_streams(nc.jetstream(), ["flood"])  # `skyfleet site join`
            finally:
                await nc.close()
            await eventually(lambda: stored_by_site(coordinator.engine).get("flood", 0) > 0)
            sent = time.monotonic()
            await publish_at_site(sites["calm"], "calm", 1, CALM)
            published = time.monotonic()
            await eventually(
                lambda: stored_by_site(coordinator.engine).get("calm") == 1 + CALM,
                timeout_s=30,
                interval_s=0.02,
            )
            calm_s = time.monotonic() - sent
            flood_then = stored_by_site(coordinator.engine)["flood"]
            print(
                f"calm stored in {calm_s:.2f} s ({time.monotonic() - published:.2f} s after it "
                f"was in its site's stream); flood stored then {flood_then}/{FLOOD}"
            )
            assert calm_s < CALM_BOUND_S
            assert flood_then < FLOOD

            await eventually(
                lambda: stored_by_site(coordinator.engine).get("flood") == FLOOD, timeout_s=30
            )
            await asyncio.sleep(0.5)  # nothing more arrives
            assert stored_by_site(coordinator.engine) == {"flood": FLOOD, "calm": 1 + CALM}
            assert coordinator.counts["frame-score"] == FLOOD + 1 + CALM
            assert coordinator.counts["rate-limited:flood"] > 0
            assert coordinator.counts["rate-limited:calm"] == 0
        finally:
            await coordinator.stop()
    warnings = [r.getMessage() for r in caplog.records if "rate-limited" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one a minute
    assert "site=flood kind=frame-score" in warnings[0]
    assert f"limit={RATE_PER_S}/s" in warnings[0]

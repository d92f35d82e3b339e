"""Model releases reach sites that score through their own Triton: the release is installed
into the site's Triton repository as a new version folder and loaded there, the canary switches
between two frames with every frame scored once and named by the version Triton scored it with,
the fleet follows, and a version that calls everything bad is rolled back on the canary, removed
from its Triton and never sent to the fleet. A Triton site without a repository refuses
releases; a Triton that is down refuses the version and leaves the repository as it was."""

import asyncio
import logging

import pytest
import tritonclient.grpc as triton_grpc
from pydantic import ValidationError

from fleetbus.identity import FleetIdentities, issue_credentials
from fleetbus.server import free_port
from fleetbus.tasks import cancel_and_wait
from imaging.quality_model import QualityModel
from imaging.triton_layout import version_folders
from protos import FrameScore, ModelRelease
from protos.streams import COMMAND_STREAM
from site_agent.learning import SiteLearning
from site_agent.learning_settings import RolloutSettings
from site_agent.release_fetch import ReleaseRefused
from site_agent.telemetry import AgentMetrics
from site_agent.triton_release import TritonRepository
from tests.model_releases import keep_fed, release_repository, release_site_settings
from tests.site_agents import running_agent, site_settings, wait_until
from tests.site_topology import hub_sourcing, running_hub, stored_messages
from training.release import RolloutPlan, roll_out, served_versions
from training.triton.repository import build_serving_repository
from training.triton.server import TritonServer, TritonServerConfig

SITES = ("east", "west")


def _runs(versions):
    """The versions in order with repeats folded: [5, 5, 6, 6] -> [5, 6]."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def _count(agent, outcome):
    labels = {"site": agent.settings.site_id, "kind": "model-release", "outcome": outcome}
    return agent.metrics.registry.get_sample_value("skyfleet_site_commands_total", labels) or 0


def _triton_counts(url):
    """Frames each loaded version of `quality` scored in the Triton at `url`."""
    client = triton_grpc.InferenceServerClient(url=url)
    try:
        stats = client.get_inference_statistics("quality", as_json=True)
    finally:
        client.close()
    return {s["version"]: int(s.get("inference_count", 0)) for s in stats["model_stats"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A release repository (quality 5, 6 and the always-bad 7, signed), and one Triton per
    site serving version 5 from a repository of its own, as a Jetson runs it beside its agent."""
    root = tmp_path_factory.mktemp("triton-release")
    issue_credentials(root / "keys", ["east"])
    seed = (root / "keys" / "release.nk").read_text()
    public_key = FleetIdentities.load(root / "keys").release_public_key
    repository = release_repository(root / "repository", seed)
    servers = {}
    for site_id in SITES:
        served = build_serving_repository(
            repository / "quality" / "5", root / site_id / "triton-repository", use_gpu=False
        )
        config = TritonServerConfig.on_free_ports(served.repository, root / site_id / "triton")
        servers[site_id] = TritonServer(config)
    try:
        for server in servers.values():  # from this thread: a server dies with its starter
            server.start()
        yield repository, public_key, servers
    finally:
        for server in servers.values():
            server.stop()


def _site(tmp_path, site_id, hub, repository, public_key, server):
    # wide limits over a few frames: version 6 (5's weights) on other frames of the sky is
    # never taken for drift, while 7 (every frame bad) moves the share of bad frames by ~1
    rollout = RolloutSettings(watch_frames=4, max_bad_fraction_shift=0.5, max_confidence_shift=0.5)
    return release_site_settings(
        tmp_path,
        site_id,
        hub,
        repository,
        public_key,
        rollout,
        triton_url=server.grpc_url,
        triton_repository=server.config.model_repository,
    )


@pytest.mark.slow
async def test_triton_sites_switch_canary_first_and_a_bad_version_rolls_back_on_the_canary(
    tmp_path, fleet, caplog
):
    caplog.set_level(logging.WARNING, logger="site_agent.triton_scorer")
    caplog.set_level(logging.INFO, logger="site_agent.model_manager")
    caplog.set_level(logging.INFO, logger="site_agent.triton_release")
    repository, public_key, servers = fleet
    written: dict = {}
    plan = RolloutPlan(canary=["east"], fleet=["west"], healthy_frames=5, soak_timeout_s=120)
    with running_hub(tmp_path / "hub") as hub:
        async with hub_sourcing(hub, list(SITES)) as hub_js:
            east_settings, west_settings = (
                _site(tmp_path, s, hub, repository, public_key, servers[s]) for s in SITES
            )
            async with running_agent(east_settings) as east, running_agent(west_settings) as west:
                feeding = asyncio.create_task(keep_fed([east, west], written))
                try:
                    assert await wait_until(
                        lambda: min(east.status().frames_scored, west.status().frames_scored) >= 1,
                        timeout_s=60,
                    )
                    good = await roll_out(hub_js, repository, "quality", "6", plan, previous="5")
                    # the fleet follows: west loads 6 into its Triton and scores with it
                    assert await wait_until(lambda: west.learning.version == "6", timeout_s=60)
                    bad = await roll_out(hub_js, repository, "quality", "7", plan, previous="6")
                finally:
                    await cancel_and_wait([feeding], timeout_s=10)
                sent = sum(len(paths) for paths in written.values())
                assert await wait_until(
                    lambda: east.status().frames_scored + west.status().frames_scored >= sent,
                    timeout_s=60,
                )
                await asyncio.sleep(2)  # the last scores reach the hub
                heartbeats = await served_versions(hub_js, list(SITES))
                rolled_back_by_east = _count(east, "rolled-back")
                east_repository = east_settings.triton_repository / "quality"
                assert await wait_until(
                    lambda: version_folders(east_repository) == ["6"], timeout_s=60
                ), version_folders(east_repository)
                served_by = {s: _triton_counts(servers[s].grpc_url) for s in SITES}
            scores = [m for m in await stored_messages(hub_js) if isinstance(m, FrameScore)]
            commands = await stored_messages(hub_js, COMMAND_STREAM)

    assert good.outcome == "fleet", good.reason
    assert bad.outcome == "rolled-back", bad.reason
    by_site = {s: [score for score in scores if score.site_id == s] for s in SITES}
    # every frame written was scored exactly once: none lost, none scored twice
    for site_id, site_scores in by_site.items():
        names = [s.frame.file_name for s in site_scores]
        assert len(names) == len(set(names)) == len(written[site_id])
        assert sorted(names) == sorted(p.name for p in written[site_id])
    assert _runs([s.model.version for s in by_site["east"]]) == ["5", "6", "7", "6"]
    assert _runs([s.model.version for s in by_site["west"]]) == ["5", "6"]
    east_sixes = [i for i, s in enumerate(scores) if s.site_id == "east" and s.model.version == "6"]
    first_west_six = next(
        i for i, s in enumerate(scores) if s.site_id == "west" and s.model.version == "6"
    )
    assert first_west_six > east_sixes[plan.healthy_frames - 1]
    releases = [(c.site_id, c.version) for c in commands if isinstance(c, ModelRelease)]
    assert ("west", "7") not in releases
    assert rolled_back_by_east == 1
    assert {site: beat.model_version for site, beat in heartbeats.items() if beat} == {
        "east": "6",
        "west": "6",
    }
    # Triton scored them, by version: no frame fell back to in-process scoring
    assert not [r for r in caplog.records if r.name == "site_agent.triton_scorer"], caplog.text
    assert served_by["east"].get("6", 0) > 0 and "7" not in served_by["east"]
    assert served_by["west"].get("6", 0) > 0 and "7" not in served_by["west"]
    assert version_folders(west_settings.triton_repository / "quality") == ["5", "6"]


def test_a_triton_site_without_a_repository_refuses_releases(tmp_path):
    settings = site_settings(tmp_path, "east", None, triton_url="127.0.0.1:8001")
    learning = SiteLearning(settings, AgentMetrics("east"))
    release = ModelRelease.model_construct(model_name="quality", version="6")
    assert asyncio.run(learning.models.install(release)) == "refused"
    assert "no Triton repository" in learning.models.last_event
    with pytest.raises(ValidationError, match="triton_repository"):
        site_settings(tmp_path, "east", None, triton_repository=tmp_path / "triton")


def test_a_version_the_sites_triton_does_not_load_is_refused_and_removed(tmp_path, fleet):
    repository, public_key, servers = fleet
    triton_repository = tmp_path / "triton-repository"
    build_serving_repository(repository / "quality" / "5", triton_repository, use_gpu=False)
    down = TritonRepository(f"127.0.0.1:{free_port()}", triton_repository)
    model = QualityModel.load(repository / "quality" / "6", public_key)
    with pytest.raises(ReleaseRefused, match="did not load version 6"):
        down.place(repository / "quality" / "6", model, beside="5")
    assert version_folders(triton_repository / "quality") == ["5"]
    not_its_repository = TritonRepository(servers["east"].grpc_url, tmp_path / "elsewhere")
    with pytest.raises(ReleaseRefused, match=r"has no quality/config\.pbtxt"):
        not_its_repository.place(repository / "quality" / "6", model, beside="5")


def test_a_retirement_never_removes_a_version_placed_after_it_was_asked(tmp_path, monkeypatch):
    """A version judged healthy asks for the others to go; a release placed while that waited
    for the repository is kept (it is about to serve). Triton's reloads are stood in for here:
    this is the order of the repository's folders."""
    issue_credentials(tmp_path / "keys", ["east"])
    seed = (tmp_path / "keys" / "release.nk").read_text()
    public_key = FleetIdentities.load(tmp_path / "keys").release_public_key
    repository = release_repository(tmp_path / "repository", seed)
    triton_repository = tmp_path / "triton-repository"
    build_serving_repository(repository / "quality" / "5", triton_repository, use_gpu=False)
    local = TritonRepository(f"127.0.0.1:{free_port()}", triton_repository)
    monkeypatch.setattr(local, "_load", lambda name, version: None)
    for version, beside in (("6", "5"), ("7", "6")):
        model = QualityModel.load(repository / "quality" / version, public_key)
        if version == "7":
            retire = local.retirement("quality", {"6"})  # 6 healthy: asked before 7 comes
        local.place(repository / "quality" / version, model, beside=beside)
    retire()
    assert version_folders(triton_repository / "quality") == ["6", "7"]
    local.retirement("quality", {"7"})()
    assert version_folders(triton_repository / "quality") == ["7"]

"""Model releases reach the sites: a canary switches between two frames and every frame score
names the model that scored it; the fleet follows only once the canary is healthy; a drifting
version is rolled back on the canary and never reaches the fleet; a tampered or foreign-signed
release is refused with its reason while the site keeps scoring with the model it has."""

import asyncio
import shutil
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from fleetbus.client import publish
from fleetbus.identity import FleetIdentities, issue_credentials
from fleetbus.tasks import cancel_and_wait
from imaging.model_signature import sign_version
from protos import FrameScore, ModelRef, ModelRelease, stable_message_id
from protos.streams import COMMAND_STREAM
from site_agent.learning_settings import RolloutSettings
from site_agent.model_manager import ModelManager, ServingModel
from skyfleet.cli.main import app
from tests.model_releases import keep_fed, release_repository, release_site_settings
from tests.site_agents import running_agent, wait_until
from tests.site_topology import hub_sourcing, join, running_hub, stored_messages
from training.release import (
    ReleaseError,
    RolloutPlan,
    model_release,
    roll_out,
    served_versions,
)


@pytest.fixture
def fleet_keys(tmp_path):
    """A fleet's release seed and public key, and another fleet's seed."""
    ours, theirs = tmp_path / "keys", tmp_path / "other-keys"
    issue_credentials(ours, ["east"])
    issue_credentials(theirs, ["east"])
    return (
        (ours / "release.nk").read_text(),
        FleetIdentities.load(ours).release_public_key,
        (theirs / "release.nk").read_text(),
    )


def _site(tmp_path, site_id, hub, repository, public_key):
    return release_site_settings(
        tmp_path, site_id, hub, repository, public_key, RolloutSettings(watch_frames=3)
    )


def _runs(versions):
    """The versions in order with repeats folded: [5, 5, 6, 6] -> [5, 6]."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def _count(agent, outcome):
    labels = {"site": agent.settings.site_id, "kind": "model-release", "outcome": outcome}
    return agent.metrics.registry.get_sample_value("skyfleet_site_commands_total", labels) or 0


@pytest.mark.slow
async def test_the_canary_switches_first_the_fleet_follows_and_a_drifting_version_rolls_back(
    tmp_path, fleet_keys
):
    seed, public_key, _ = fleet_keys
    repository = release_repository(tmp_path / "repository", seed)
    written: dict = {}
    plan = RolloutPlan(canary=["east"], fleet=["west"], healthy_frames=5, soak_timeout_s=120)
    with running_hub(tmp_path / "hub") as hub:
        async with hub_sourcing(hub, ["east", "west"]) as hub_js:
            east_settings = _site(tmp_path, "east", hub, repository, public_key)
            west_settings = _site(tmp_path, "west", hub, repository, public_key)
            async with running_agent(east_settings) as east, running_agent(west_settings) as west:
                feeding = asyncio.create_task(keep_fed([east, west], written))
                try:
                    # both sites score with the serving version before the release goes out
                    assert await wait_until(
                        lambda: min(east.status().frames_scored, west.status().frames_scored) >= 1,
                        timeout_s=60,
                    )
                    good = await roll_out(hub_js, repository, "quality", "6", plan, previous="5")
                    bad = await roll_out(hub_js, repository, "quality", "7", plan, previous="6")
                finally:
                    await cancel_and_wait([feeding], timeout_s=10)
                sent = sum(len(paths) for paths in written.values())
                assert await wait_until(
                    lambda: east.status().frames_scored + west.status().frames_scored >= sent,
                    timeout_s=60,
                )
                await asyncio.sleep(2)  # the last scores reach the hub
                heartbeats = await served_versions(hub_js, ["east", "west"])
                rolled_back_by_east = _count(east, "rolled-back")
            scores = [m for m in await stored_messages(hub_js) if isinstance(m, FrameScore)]
            commands = await stored_messages(hub_js, COMMAND_STREAM)

    assert good.outcome == "fleet", good.reason
    assert bad.outcome == "rolled-back", bad.reason
    assert "went back to version 6" in bad.reason
    east_scores = [s for s in scores if s.site_id == "east"]
    west_scores = [s for s in scores if s.site_id == "west"]
    # every frame scored once, by one model, switched between frames: 5, then 6, 7, back to 6
    for site_id, site_scores in (("east", east_scores), ("west", west_scores)):
        names = [s.frame.file_name for s in site_scores]
        assert sorted(names) == sorted(p.name for p in written[site_id])
    assert _runs([s.model.version for s in east_scores]) == ["5", "6", "7", "6"]
    assert _runs([s.model.version for s in west_scores]) == ["5", "6"]
    # the fleet switched only after the canary showed 5 healthy frames with the version
    east_sixes = [i for i, s in enumerate(scores) if s.site_id == "east" and s.model.version == "6"]
    first_west_six = next(
        i for i, s in enumerate(scores) if s.site_id == "west" and s.model.version == "6"
    )
    assert first_west_six > east_sixes[plan.healthy_frames - 1]
    releases = [(c.site_id, c.version) for c in commands if isinstance(c, ModelRelease)]
    assert ("west", "7") not in releases
    assert releases.count(("east", "6")) == 2  # released, then sent again after 7 rolled back
    assert rolled_back_by_east == 1
    assert {site: beat.model_version for site, beat in heartbeats.items() if beat} == {
        "east": "6",
        "west": "6",
    }


async def test_a_tampered_or_foreign_signed_release_is_refused_and_scoring_goes_on(
    tmp_path, fleet_keys
):
    seed, public_key, foreign_seed = fleet_keys
    repository = release_repository(tmp_path / "repository", seed)
    foreign = tmp_path / "foreign"
    shutil.copytree(repository / "quality" / "6", foreign / "quality" / "6")
    sign_version(foreign / "quality" / "6", foreign_seed)
    with running_hub(tmp_path / "hub") as hub:
        async with hub_sourcing(hub, ["east"]) as hub_js:
            settings = _site(tmp_path, "east", hub, repository, public_key)
            async with running_agent(settings) as east:
                release = model_release(repository, "quality", "6", site_id="east")
                tampered = release.model_copy(
                    update={"sha256": "0" * 64, "message_id": stable_message_id("tampered")}
                )
                await publish(hub_js, tampered)
                assert await wait_until(lambda: _count(east, "refused") == 1, timeout_s=30)
                tampered_event = east.learning.models.last_event
                signed_elsewhere = model_release(foreign, "quality", "6", site_id="east")
                await publish(hub_js, signed_elsewhere)
                assert await wait_until(lambda: _count(east, "refused") == 2, timeout_s=30)
                foreign_event = east.learning.models.last_event
                served = east.learning.version
    assert "sha256" in tampered_event and "not the model released" in tampered_event
    assert "release key" in foreign_event
    assert served == "5"
    assert not (settings.work_dir / "models" / "quality" / "6").exists()


def test_a_release_for_a_version_not_in_the_repository_is_refused_at_the_centre(
    tmp_path, fleet_keys
):
    repository = release_repository(tmp_path / "repository", fleet_keys[0])
    with pytest.raises(ReleaseError, match="not in the repository"):
        model_release(repository, "quality", "9", site_id="east")


class _Named:
    """A predictor that answers with fixed probabilities, optionally waiting or failing."""

    def __init__(self, version, *, gate=None, fails=False):
        self.ref = ModelRef(name="quality", version=version)
        self.gate, self.fails, self.calls = gate, fails, 0

    def predict(self, batch):
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.fails:
            raise RuntimeError("CUDA error: an illegal memory access")
        return np.tile([0.8, 0.1, 0.1], (len(batch), 1))


def test_a_switch_asked_for_mid_frame_takes_effect_at_the_next_frame():
    gate = threading.Event()
    old, new = _Named("5", gate=gate), _Named("6")
    serving = ServingModel(old, lambda ref, error: None)
    batch = np.zeros((1, 1, 128, 128), dtype=np.float32)
    in_hand = threading.Thread(target=serving.predict, args=(batch,))
    in_hand.start()
    serving.switch_to(new)  # while the frame in hand is being scored
    gate.set()
    in_hand.join()
    assert (old.calls, new.calls, serving.ref.version) == (1, 0, "5")
    serving.predict(batch)
    assert (old.calls, new.calls, serving.ref.version) == (1, 1, "6")


def test_a_new_model_that_fails_on_a_frame_is_rolled_back_and_the_frame_still_scored(tmp_path):
    outcomes = []
    manager = ModelManager(
        "east",
        tmp_path,
        release_public_key=None,
        limits=RolloutSettings(),
        count=lambda kind, outcome: outcomes.append(outcome),
    )
    serving = manager.serve(_Named("5"))
    serving.switch_to(_Named("6", fails=True))
    probabilities = serving.predict(np.zeros((1, 1, 128, 128), dtype=np.float32))
    assert probabilities.shape == (1, 3)
    assert serving.ref.version == "5"
    assert outcomes == ["rolled-back"]
    assert "6" in manager.rolled_back and "failed on a frame" in manager.last_event


async def test_a_restarted_site_serves_the_healthy_version_it_had_switched_to(tmp_path, fleet_keys):
    seed, public_key, _ = fleet_keys
    repository = release_repository(tmp_path / "repository", seed)
    written: dict = {}
    with running_hub(tmp_path / "hub") as hub:
        async with hub_sourcing(hub, ["east"]) as hub_js:
            settings = _site(tmp_path, "east", hub, repository, public_key)
            async with running_agent(settings) as east:
                await publish(hub_js, model_release(repository, "quality", "6", site_id="east"))
                feeding = asyncio.create_task(keep_fed([east], written))
                try:
                    assert await wait_until(lambda: _count(east, "healthy") == 1, timeout_s=60)
                finally:
                    await cancel_and_wait([feeding], timeout_s=10)
            async with running_agent(settings) as again:
                feeding = asyncio.create_task(keep_fed([again], written))
                try:
                    assert await wait_until(lambda: again.learning.version == "6", timeout_s=60)
                finally:
                    await cancel_and_wait([feeding], timeout_s=10)
                installed_again = _count(again, "installed")
    assert installed_again == 1  # from the site's own copy, verified again


def test_the_model_commands_list_versions_release_them_and_say_what_sites_serve(
    tmp_path, fleet_keys
):
    repository = release_repository(tmp_path / "repository", fleet_keys[0])
    runner = CliRunner()
    listed = runner.invoke(app, ["model", "list", "--repository", str(repository)])
    assert listed.exit_code == 0, listed.output
    assert [
        line.split("│")[1].strip() for line in listed.output.splitlines() if "│ yes" in line
    ] == [
        "5",
        "6",
        "7",
    ]
    with running_hub(tmp_path / "hub") as hub:
        asyncio.run(join(hub, ["east"]))
        hub_flags = ["--sites", "east", "--nats", hub.url]
        status = runner.invoke(app, ["model", "status", *hub_flags])
        where = ["--repository", str(repository), *hub_flags]
        missing = runner.invoke(app, ["model", "rollback", "9", *where])
        back = runner.invoke(app, ["model", "rollback", "5", *where])
    assert status.exit_code == 0 and "no heartbeat" in status.output, status.output
    assert missing.exit_code == 1 and "version 9 is not in the repository" in missing.output
    assert back.exit_code == 0 and "quality version 5 sent to east" in back.output, back.output


async def test_a_release_naming_a_folder_outside_the_sites_repository_is_refused(
    tmp_path, fleet_keys
):
    repository = release_repository(tmp_path / "repository", fleet_keys[0])
    outcomes = []
    manager = ModelManager(
        "east",
        tmp_path / "models",
        release_public_key=fleet_keys[1],
        limits=RolloutSettings(),
        count=lambda kind, outcome: outcomes.append(outcome),
    )
    manager.serve(_Named("5"))
    release = model_release(repository, "quality", "6", site_id="east")
    escaping = release.model_copy(update={"version": "../../6"})
    assert await manager.install(escaping) == "refused"
    assert "not a model name and version number" in manager.last_event
    assert manager.version == "5"

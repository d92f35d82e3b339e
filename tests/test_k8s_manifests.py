"""The Kubernetes manifests agree with the code: real commands, real settings, real files."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from coordinator.settings import CoordinatorSettings
from site_agent.settings import SiteAgentSettings
from skyfleet.cli import app

K8S = Path(__file__).resolve().parents[1] / "k8s"
SETTINGS = {"SKYFLEET_SITE_": SiteAgentSettings, "SKYFLEET_COORDINATOR_": CoordinatorSettings}


def _documents() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / "base" / name).read_text()) if d]
    return docs


def _containers() -> list[dict]:
    found = []
    for doc in _documents():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        found += pod.get("containers", [])
    return [c for c in found if c["image"] == "skyfleet"]


def test_every_kustomization_resource_exists_and_parses():
    kinds = {doc["kind"] for doc in _documents()}
    assert {"StatefulSet", "Deployment", "Service", "Job", "Namespace"} <= kinds


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c["name"])
def test_skyfleet_containers_run_real_commands(container):
    command = container["command"]
    assert command[0] == "skyfleet"
    words = [w for w in command[1:] if not w.startswith("--")]
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, f"`skyfleet {' '.join(words)}` is not a command"
    for flag in (w.split("=")[0] for w in command[1:] if w.startswith("--")):
        assert flag in result.output, f"`skyfleet {' '.join(words)}` has no option {flag}"


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c["name"])
def test_skyfleet_environment_names_real_settings(container):
    for variable in (e["name"] for e in container.get("env", [])):
        if variable == "SKYFLEET_DATABASE_URL" or not variable.startswith("SKYFLEET_"):
            continue
        prefix = next(p for p in SETTINGS if variable.startswith(p))
        field = variable.removeprefix(prefix).lower()
        assert field in SETTINGS[prefix].model_fields, f"{variable} sets no setting"


def test_the_hub_config_is_the_one_skyfleet_generates_with_the_hub_domain():
    (config_map,) = [
        d
        for d in _documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-hub-config"
    ]
    generated = CliRunner().invoke(
        app,
        [
            "site",
            "nats-config",
            "--hub",
            "--host",
            "0.0.0.0",
            "--port",
            "4222",
            "--monitor-port",
            "8222",
            "--leaf-port",
            "7422",
            "--store-dir",
            "/data",
        ],
    )
    assert generated.exit_code == 0, generated.output
    assert config_map["data"]["nats-server.conf"] == generated.output
    assert 'domain: "hub"' in generated.output


def test_the_coordinator_sources_the_sites_that_run_in_the_cluster():
    (coordinator,) = [c for c in _containers() if c["name"] == "coordinator"]
    env = {e["name"]: e.get("value") for e in coordinator["env"]}
    settings = CoordinatorSettings.model_validate(
        {"sites": json.loads(env["SKYFLEET_COORDINATOR_SITES"])}
    )
    agents = [c for c in _containers() if c["name"] == "agent"]
    site_ids = {
        e["value"] for c in agents for e in c["env"] if e["name"] == "SKYFLEET_SITE_SITE_ID"
    }
    assert set(settings.sites) == site_ids

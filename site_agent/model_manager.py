"""Model releases at a site: fetch, verify, switch between frames, watch for drift, roll back.

A `ModelRelease` (a command from the centre) names a model, a version, the sha256 of its
`model.pt` and the model repository it is in (`file://` or `http(s)://`, Triton's layout:
`<repository>/<model>/<version>/{model.pt,manifest.json,signature.json}`). `ModelManager`:
1. fetches the version folder into the site's own repository (`<work>/models/<model>/<version>`,
   `site_agent.release_fetch`);
2. refuses it, saying why in one line, when `model.pt` is not the release's sha256, when it is
   not signed by the fleet's release key (a site given `release_public_key`), when it does not
   load (`imaging.quality_model.QualityModel.load`: manifest, preprocessing, TorchScript), or
   when it is not the model this site serves; the site keeps scoring with the model it has;
3. loads it beside the serving one and hands it to `ServingModel`, which switches between two
   frames: the frame in hand finishes with the model it started with, the next is scored by the
   new one, and every `FrameScore` names the model that scored it;
4. watches the first `RolloutSettings.watch_frames` frames the new version scores against the
   serving model's last ones: when the share of bad frames or the mean confidence moves by more
   than its limit, or the new model fails on a frame, it switches back to the previous version
   (kept loaded until then) and refuses that version from then on; the log says why.

A site that scores through its own Triton hands the verified version to a `Placement`
(`site_agent.triton_release.TritonRepository`): it goes into Triton's repository as a new version
folder, is loaded there beside the serving one, and is scored by its number (in process while
Triton is down); a version rolled back is removed from that repository again.

Outcomes are counted (`skyfleet_site_commands_total{kind="model-release"}`) and the serving
version goes in every heartbeat, which is how the centre (`training.release`) sees a canary
switch, settle or roll back.
"""

import asyncio
import logging
import re
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import ValidationError

from imaging.fits_reader import sha256_of_file
from imaging.quality_model import MODEL_FILE, ModelLoadError, QualityModel
from imaging.scoring import QualityPredictor
from protos import FleetMessage, FrameScore, ModelRef, ModelRelease, QualityLabel
from site_agent.learning_settings import RolloutSettings
from site_agent.release_fetch import ReleaseRefused, fetch_version

log = logging.getLogger(__name__)

RELEASE_QUEUE = 8
"""Releases waiting to be installed: one is installed at a time, and a ninth waiting means the
centre is releasing faster than a site can fetch (refused, counted; the centre resends)."""
Count = Callable[[str, str], None]
MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION = re.compile(r"^[0-9]{1,32}$")
"""Triton's version folders are numbers; both become folder names at the site, so nothing else
(a `..`, a slash) is accepted from a release."""


class Placement(Protocol):
    """Where a verified version goes to score, other than in process (the site's Triton)."""

    def place(self, version_dir: Path, model: QualityModel, *, beside: str) -> QualityPredictor:
        """Make the version servable beside version `beside` (the serving one; others may go);
        what scores with it (`ReleaseRefused`: why it cannot)."""
        ...

    def retirement(self, name: str, versions: set[str]) -> Callable[[], None]:
        """The work (run in a thread of its own) of removing every version of `name` other
        than `versions` that was placed before this call: a version placed meanwhile (a release
        installed while the retirement waited) is never removed by it."""
        ...


class ServingModel:
    """The quality predictor the pipeline scores with, switched only between frames.

    `switch_to` only names the next model; `predict` (one call a frame, from the one worker)
    takes it up before scoring, so a frame is scored by one model throughout and `ref` (read
    after `predict` by `imaging.scoring.score_frame`) names that model. A new model that fails
    on a frame is dropped at once for the previous one, which scores that frame.
    """

    def __init__(
        self, model: QualityPredictor, on_failure: Callable[[ModelRef, str], None]
    ) -> None:
        self._lock = threading.Lock()
        self._current = model
        self._previous: QualityPredictor | None = None
        self._next: QualityPredictor | None = None
        self._on_failure = on_failure

    @property
    def ref(self) -> ModelRef:
        return self._current.ref

    @property
    def previous(self) -> QualityPredictor | None:
        """The model scored with before the last switch (kept loaded for a rollback)."""
        return self._previous

    def switch_to(self, model: QualityPredictor) -> None:
        """Score with `model` from the next frame on (the previous stays loaded)."""
        with self._lock:
            self._next = model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._next is not None:
                self._previous, self._current, self._next = self._current, self._next, None
            model, previous = self._current, self._previous
        try:
            return model.predict(batch)
        except Exception as exc:
            if previous is None or isinstance(exc, ValueError):  # a bad input, not the model
                raise
            with self._lock:
                self._current, self._previous = previous, None
            self._on_failure(model.ref, repr(exc))
            return previous.predict(batch)


def window_figures(labels: "deque[tuple[bool, float]]") -> tuple[float, float]:
    """The share of bad verdicts and the mean confidence of (bad?, confidence) pairs."""
    return (
        sum(bad for bad, _ in labels) / len(labels),
        sum(confidence for _, confidence in labels) / len(labels),
    )


def drift_reason(
    before: "deque[tuple[bool, float]]",
    after: "deque[tuple[bool, float]]",
    limits: RolloutSettings,
) -> str | None:
    """Why the frames `after` a switch departed from those `before` it, or None."""
    if not before:
        return None  # nothing to compare with: the new version is judged healthy
    bad_before, confidence_before = window_figures(before)
    bad_after, confidence_after = window_figures(after)
    if abs(bad_after - bad_before) > limits.max_bad_fraction_shift:
        return (
            f"share of bad frames {bad_after:.2f} over {len(after)} frames against "
            f"{bad_before:.2f} before (limit ±{limits.max_bad_fraction_shift:.2f})"
        )
    if abs(confidence_after - confidence_before) > limits.max_confidence_shift:
        return (
            f"mean confidence {confidence_after:.2f} over {len(after)} frames against "
            f"{confidence_before:.2f} before (limit ±{limits.max_confidence_shift:.2f})"
        )
    return None


class ModelManager:
    """Installs the releases a site receives and keeps the one it serves healthy."""

    def __init__(
        self,
        site_id: str,
        store_dir: Path,
        *,
        release_public_key: str | None,
        limits: RolloutSettings,
        count: Count,
        refuse_all: str | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.site_id = site_id
        self.store_dir = store_dir
        self.limits = limits
        self._key = release_public_key
        self._count = count
        self._refuse_all = refuse_all
        self._placement = placement
        self._queue: asyncio.Queue[ModelRelease] = asyncio.Queue(maxsize=RELEASE_QUEUE)
        self.serving: ServingModel | None = None
        self._recent: dict[str, deque[tuple[bool, float]]] = {}
        self._watching: tuple[ModelRelease, str] | None = None
        """(the release, the previous version) while a switched model is being judged."""
        self.rolled_back: set[str] = set()
        self.last_event = ""

    def serve(self, model: QualityPredictor) -> ServingModel:
        """Wrap the model loaded at start; the pipeline scores with what this returns."""
        self.serving = ServingModel(model, self._failed)
        record = self.store_dir / f"serving-{model.ref.name}.json"
        try:
            kept = ModelRelease.model_validate_json(record.read_bytes())
        except FileNotFoundError:
            return self.serving
        except (OSError, ValidationError) as exc:
            log.warning("serving record unusable site=%s file=%s: %s", self.site_id, record, exc)
            return self.serving
        if kept.version != model.ref.version:  # installed again, verified again
            self.submit(kept)
        return self.serving

    @property
    def version(self) -> str | None:
        return self.serving.ref.version if self.serving else None

    def submit(self, release: ModelRelease) -> None:
        """Take a release from the command consumer (installed by `run`, not here)."""
        try:
            self._queue.put_nowait(release)
        except asyncio.QueueFull:
            self._report(release, "refused", "too many releases waiting at this site")

    async def run(self) -> None:
        while True:
            release = await self._queue.get()
            await self.install(release)

    async def install(self, release: ModelRelease) -> str:
        """Fetch, verify, load and switch to a release; returns the outcome counted."""
        try:
            model = await asyncio.to_thread(self._verified, release)
        except (ReleaseRefused, ModelLoadError) as exc:
            return self._report(release, "refused", str(exc))
        if model is None:
            return self._report(release, "current", "already serving it")
        assert self.serving is not None
        previous = self.serving.ref.version
        self._watching = (release, previous)
        self._recent.pop(release.version, None)
        self.serving.switch_to(model)
        return self._report(
            release, "installed", f"switches from version {previous} at the next frame"
        )

    def _verified(self, release: ModelRelease) -> QualityPredictor | None:
        """The release loaded, verified and placed (None: it is what the site serves)."""
        if self._refuse_all is not None:
            raise ReleaseRefused(self._refuse_all)
        if self.serving is None:
            raise ReleaseRefused("the site is not scoring yet")
        serving = self.serving.ref
        if not MODEL_NAME.match(release.model_name) or not VERSION.match(release.version):
            raise ReleaseRefused(
                f"not a model name and version number: {release.model_name!r} {release.version!r}"
            )
        if release.model_name != serving.name:
            raise ReleaseRefused(
                f"this site serves model {serving.name!r} here, not {release.model_name!r}"
            )
        if release.version == serving.version:
            return None
        if release.version in self.rolled_back:
            raise ReleaseRefused(f"version {release.version} was rolled back at this site")
        folder = self.store_dir / release.model_name / release.version
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.store_dir))
        try:
            fetch_version(release, staging, self.limits.fetch_timeout_s)
            actual = sha256_of_file(staging / MODEL_FILE)
            if actual != release.sha256:
                raise ReleaseRefused(
                    f"model.pt has sha256 {actual[:16]}..., the release says "
                    f"{release.sha256[:16]}...: not the model released"
                )
            model = QualityModel.load(staging, self._key)
            if model.ref.version != release.version or model.ref.name != release.model_name:
                raise ReleaseRefused(
                    f"the folder holds {model.ref.name} version {model.ref.version}"
                )
            shutil.rmtree(folder, ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if self._placement is None:
            return model
        try:
            return self._placement.place(folder, model, beside=serving.version)
        except ReleaseRefused:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def observing(self, then: Callable[[FleetMessage], None]) -> Callable[[FleetMessage], None]:
        """`then`, after letting the drift watch see each settled message."""

        def settled(message: FleetMessage) -> None:
            self.observe(message)
            then(message)

        return settled

    def observe(self, message: FleetMessage) -> None:
        """Count a settled frame score for its model; judge a new version once it scored enough."""
        if not isinstance(message, FrameScore):
            return
        window = self._recent.setdefault(
            message.model.version, deque(maxlen=self.limits.watch_frames)
        )
        window.append((message.label is QualityLabel.BAD, message.confidence))
        if self._watching is None or message.model.version != self._watching[0].version:
            return
        release, previous = self._watching
        new = release.version
        if len(window) < self.limits.watch_frames:
            return
        self._watching = None
        reason = drift_reason(self._recent.get(previous, deque()), window, self.limits)
        if reason is None:
            self._event(
                "healthy",
                f"model {message.model.name} version {new} healthy after {len(window)} frames",
            )
            self._keep_serving(release)
            self._retire(release.model_name, {new, previous})
            return
        self._roll_back(new, f"drift: {reason}")

    def _keep_serving(self, release: ModelRelease) -> None:
        """Record a healthy release so that a restarted agent serves it again (fetched from the
        site's own copy and verified again)."""
        local = release.model_copy(update={"repository_uri": self.store_dir.absolute().as_uri()})
        record = self.store_dir / f"serving-{release.model_name}.json"
        try:
            record.write_text(local.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            log.warning("serving record not written site=%s: %s", self.site_id, exc)

    def _retire(self, name: str, keep: set[str]) -> None:
        """Have the placement keep only the versions `keep` (in a thread: this runs on the
        event loop or the scoring worker, and a Triton reload takes seconds)."""
        if self._placement is not None:
            work = self._placement.retirement(name, keep)
            threading.Thread(target=work, daemon=True).start()

    def _failed(self, ref: ModelRef, error: str) -> None:
        """The new model failed on a frame (the worker thread): it is rolled back already."""
        self.rolled_back.add(ref.version)
        self._watching = None
        if self.serving is not None:
            self._retire(ref.name, {self.serving.ref.version})
        self._event(
            "rolled-back",
            f"model {ref.name} version {ref.version} rolled back: failed on a frame ({error})",
        )

    def _roll_back(self, version: str, reason: str) -> None:
        assert self.serving is not None
        previous = self.serving.previous
        self.rolled_back.add(version)
        if previous is not None:
            self.serving.switch_to(previous)
            self._retire(previous.ref.name, {previous.ref.version})
        self._event("rolled-back", f"model version {version} rolled back: {reason}")

    def _report(self, release: ModelRelease, outcome: str, reason: str) -> str:
        self._event(
            outcome,
            f"model release {release.model_name} version {release.version} {outcome}: {reason}",
        )
        return outcome

    def _event(self, outcome: str, text: str) -> None:
        self.last_event = text
        self._count(ModelRelease.KIND, outcome)
        level = logging.WARNING if outcome in ("refused", "rolled-back") else logging.INFO
        log.log(level, "%s site=%s", text, self.site_id)

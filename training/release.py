"""Releasing a promoted model version to the sites: canary first, the fleet once the canary is
healthy with it, or the release rolled back.

A release is a `ModelRelease` per site (`fleet.cmd.<site>.model.release`) naming the model, the
version, the sha256 of its `model.pt` (from the version's manifest, checked against the file
before anything is announced) and where to fetch it (the model repository, `file://` or
`http(s)://`, Triton's layout). The sites verify and switch by themselves
(`site_agent.model_manager`); the centre only watches what they publish:

1. the release goes to the canary site(s) alone;
2. the centre reads the canaries' `FrameScore`s from the hub's `FLEET` stream: each names the
   model that scored it. A canary is healthy once `healthy_frames` frames were scored by the new
   version; that is more than a site's own drift window (`RolloutSettings.watch_frames`, 20), so
   a canary that would roll the version back has done so before the centre counts it healthy;
3. every canary healthy: the release goes to the rest of the fleet;
4. a canary that scored with the new version and then with another again rolled it back; a
   canary that never scored with it within `soak_timeout_s` refused it or was not observing:
   either way the fleet never gets it, and with `previous` known the canaries are sent the
   previous version again (harmless where they serve it; it supersedes the release where a
   canary was offline and would install it late).
"""

import time
from pathlib import Path
from typing import Literal

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field

from fleetbus.client import publish
from imaging.fits_reader import sha256_of_file
from imaging.model_signature import SIGNATURE_FILE
from imaging.quality_model import MODEL_FILE, read_manifest
from protos import (
    FrameScore,
    ModelRelease,
    SiteHeartbeat,
    decode_subject_message,
    stable_message_id,
)
from protos.base import SiteId, utc_now
from protos.streams import FLEET_STREAM
from protos.subjects import all_sites_of_kind, subject_for_kind
from training.versions import released_versions

HEALTHY_FRAMES = 25
"""Frames a canary scores with the new version before the fleet gets it: the site's own drift
window (20 frames) and a margin, so the canary has judged the version first."""
SOAK_TIMEOUT_S = 3600.0
"""How long a canary has to show frames scored by the new version: an hour of a night."""


class ReleaseError(Exception):
    """A version that cannot be released (missing, or its model.pt not its manifest's)."""


class RolloutPlan(BaseModel):
    """Who gets a release, in which order, and when the canary counts as healthy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    canary: list[SiteId] = Field(min_length=1)
    fleet: list[SiteId] = Field(default_factory=list)
    healthy_frames: int = Field(default=HEALTHY_FRAMES, ge=1)
    soak_timeout_s: float = Field(default=SOAK_TIMEOUT_S, gt=0.0)


class RolloutResult(BaseModel):
    """How a release went."""

    model_name: str
    version: str
    outcome: Literal["fleet", "rolled-back", "not-served"]
    reason: str
    canary_frames: dict[str, int]
    released_to: list[str]


class VersionInfo(BaseModel):
    """One version folder of a model repository."""

    version: str
    sha256: str
    signed: bool
    path: str


def repository_versions(repository: Path, model_name: str) -> list[VersionInfo]:
    """The versions of a model in a repository, oldest first."""
    model_dir = repository / model_name
    found = []
    for number in released_versions(model_dir):
        folder = model_dir / str(number)
        manifest = read_manifest(folder)
        found.append(
            VersionInfo(
                version=manifest.version,
                sha256=manifest.sha256,
                signed=(folder / SIGNATURE_FILE).is_file(),
                path=str(folder),
            )
        )
    return found


def model_release(
    repository: Path,
    model_name: str,
    version: str,
    *,
    site_id: str,
    repository_uri: str | None = None,
    promoted_from: str | None = None,
) -> ModelRelease:
    """The release of one version to one site; refuses a version whose `model.pt` is not the one
    its manifest names (`ReleaseError`)."""
    folder = repository / model_name / version
    if not (folder / MODEL_FILE).is_file():
        raise ReleaseError(f"{folder}: no {MODEL_FILE}: version {version} is not in the repository")
    manifest = read_manifest(folder)
    actual = sha256_of_file(folder / MODEL_FILE)
    if actual != manifest.sha256:
        raise ReleaseError(f"{folder}: model.pt is not the manifest's (sha256 {actual[:16]}...)")
    released_at = utc_now()
    return ModelRelease(
        message_id=stable_message_id(
            ModelRelease.KIND, site_id, model_name, version, released_at.isoformat()
        ),
        site_id=site_id,
        model_name=model_name,
        version=version,
        sha256=manifest.sha256,
        repository_uri=repository_uri or repository.absolute().as_uri(),
        promoted_from=promoted_from,
        released_at=released_at,
    )


async def announce(
    js: JetStreamContext,
    repository: Path,
    model_name: str,
    version: str,
    sites: list[str],
    **release: str | None,
) -> list[ModelRelease]:
    """Publish the release of `version` to each of `sites` (the hub's command stream)."""
    sent = []
    for site_id in sites:
        message = model_release(repository, model_name, version, site_id=site_id, **release)
        await publish(js, message)
        sent.append(message)
    return sent


async def roll_out(
    js: JetStreamContext,
    repository: Path,
    model_name: str,
    version: str,
    plan: RolloutPlan,
    *,
    repository_uri: str | None = None,
    previous: str | None = None,
) -> RolloutResult:
    """Release `version` to the canaries, then to the fleet once they are healthy with it."""
    scores = await js.subscribe(
        all_sites_of_kind(FrameScore.KIND),
        stream=FLEET_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    try:
        await announce(
            js,
            repository,
            model_name,
            version,
            plan.canary,
            repository_uri=repository_uri,
            promoted_from=previous,
        )
        frames, trouble = await _watch_canaries(scores, version, plan)
    finally:
        await scores.unsubscribe()

    def result(
        outcome: Literal["fleet", "rolled-back", "not-served"], reason: str, to: list[str]
    ) -> RolloutResult:
        return RolloutResult(
            model_name=model_name,
            version=version,
            outcome=outcome,
            reason=reason,
            canary_frames=frames,
            released_to=to,
        )

    if trouble is None:
        await announce(
            js,
            repository,
            model_name,
            version,
            plan.fleet,
            repository_uri=repository_uri,
            promoted_from=previous,
        )
        reason = f"canary healthy after {plan.healthy_frames} frames with version {version}"
        return result("fleet", reason, [*plan.canary, *plan.fleet])
    outcome, reason = trouble
    if previous is not None:
        await announce(
            js, repository, model_name, previous, plan.canary, repository_uri=repository_uri
        )
        reason += f"; canaries sent version {previous} again"
    return result(outcome, reason, list(plan.canary))


async def _watch_canaries(
    scores: JetStreamContext.PushSubscription, version: str, plan: RolloutPlan
) -> tuple[dict[str, int], tuple[Literal["rolled-back", "not-served"], str] | None]:
    """Frames each canary scored with `version`, and what went wrong (None: all healthy)."""
    frames = dict.fromkeys(plan.canary, 0)
    deadline = time.monotonic() + plan.soak_timeout_s
    while min(frames.values()) < plan.healthy_frames:
        left = deadline - time.monotonic()
        if left <= 0:
            waiting = sorted(s for s, n in frames.items() if n < plan.healthy_frames)
            return frames, (
                "not-served",
                f"canary {', '.join(waiting)} did not score {plan.healthy_frames} frames with "
                f"version {version} within {plan.soak_timeout_s:.0f} s (refused, or idle)",
            )
        try:
            msg = await scores.next_msg(timeout=min(left, 5.0))
        except TimeoutError:
            continue
        score = decode_subject_message(msg.subject, msg.data)
        if not isinstance(score, FrameScore) or score.site_id not in frames:
            continue
        if score.model.version == version:
            frames[score.site_id] += 1
        elif frames[score.site_id] > 0:
            return frames, (
                "rolled-back",
                f"canary {score.site_id} went back to version {score.model.version} after "
                f"{frames[score.site_id]} frames with version {version}",
            )
    return frames, None


async def served_versions(
    js: JetStreamContext, sites: list[str]
) -> dict[str, SiteHeartbeat | None]:
    """Each site's latest heartbeat at the hub (it names the version the site serves)."""
    found: dict[str, SiteHeartbeat | None] = {}
    for site_id in sites:
        subject = subject_for_kind(SiteHeartbeat.KIND, site_id)
        try:
            raw = await js.get_last_msg(FLEET_STREAM, subject)
        except NotFoundError:
            found[site_id] = None
            continue
        beat = decode_subject_message(subject, raw.data or b"")
        found[site_id] = beat if isinstance(beat, SiteHeartbeat) else None
    return found

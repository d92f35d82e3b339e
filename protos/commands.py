"""Commands from the centre to a site (follow-up requests, model releases) and their replies."""

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import Field, model_validator

from protos.base import ContractModel, FleetMessage, Sha256, UtcDatetime


class SkyTarget(ContractModel):
    """What to point at."""

    name: str = Field(min_length=1, max_length=64)
    ra_deg: float = Field(ge=0.0, lt=360.0)
    dec_deg: float = Field(ge=-90.0, le=90.0)


class ExposurePlan(ContractModel):
    """How to observe a target."""

    filter: str = Field(min_length=1, max_length=32)
    exptime_s: float = Field(gt=0.0, le=3600.0)
    count: int = Field(ge=1, le=100)


class FollowUpRequest(FleetMessage):
    """The coordinator asks one site to observe a target before a deadline."""

    KIND: ClassVar[str] = "followup-request"

    request_id: str = Field(min_length=1, max_length=64)
    target: SkyTarget
    plan: ExposurePlan
    not_before: UtcDatetime | None = None
    deadline: UtcDatetime
    priority: int = Field(ge=1, le=10, description="1 is the most urgent.")
    reason: str = Field(default="", max_length=256)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Self:
        if self.not_before is not None and self.not_before >= self.deadline:
            raise ValueError("not_before must be earlier than deadline")
        return self


class FollowUpState(StrEnum):
    """Where a follow-up request stands at its site: accepted (queued at the telescope), then
    observing (with exposures done out of the total), then done, failed (with its reason) or
    cancelled (by a `FollowUpCancel`; a cancelled request is never executed again)."""

    ACCEPTED = "accepted"
    OBSERVING = "observing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FollowUpStatus(FleetMessage):
    """A site's report on a follow-up request."""

    KIND: ClassVar[str] = "followup-status"

    request_id: str = Field(min_length=1, max_length=64)
    state: FollowUpState
    reason: str | None = Field(default=None, max_length=256)
    frames: list[str] = Field(default_factory=list, max_length=100)
    exposures_done: int = Field(
        default=0, ge=0, le=100, description="Exposures taken and written so far."
    )
    exposures_total: int | None = Field(
        default=None, ge=1, le=100, description="Exposures the plan asks for (its count)."
    )

    @model_validator(mode="after")
    def _failure_has_reason(self) -> Self:
        if self.state in (FollowUpState.FAILED, FollowUpState.CANCELLED) and not self.reason:
            raise ValueError(f"a {self.state.value} follow-up needs a reason")
        if self.exposures_total is not None and self.exposures_done > self.exposures_total:
            raise ValueError("exposures_done exceeds exposures_total")
        return self


class FollowUpCancel(FleetMessage):
    """The coordinator withdraws a follow-up request from a site (an operator's cancel, or a
    re-plan that moved it elsewhere). The site stops it, at the latest after the exposure in
    progress, never starts it again, and answers with a `cancelled` `FollowUpStatus` (or the
    request's final state, if it had already finished)."""

    KIND: ClassVar[str] = "followup-cancel"

    request_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=256)


class FollowUpReprioritise(FleetMessage):
    """The coordinator changes the priority of a request already queued at a site (1 is the most
    urgent); the site re-orders its queue and answers with the request's current status."""

    KIND: ClassVar[str] = "followup-priority"

    request_id: str = Field(min_length=1, max_length=64)
    priority: int = Field(ge=1, le=10)


class ModelRelease(FleetMessage):
    """A model version promoted for the sites, with where to fetch it and how it scored."""

    KIND: ClassVar[str] = "model-release"

    model_name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    sha256: Sha256
    repository_uri: str = Field(min_length=1, max_length=1024)
    metrics: dict[str, float] = Field(default_factory=dict)
    promoted_from: str | None = Field(default=None, max_length=32)
    released_at: UtcDatetime | None = None

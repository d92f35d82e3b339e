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
    """Where a follow-up request stands at its site."""

    ACCEPTED = "accepted"
    OBSERVING = "observing"
    DONE = "done"
    FAILED = "failed"


class FollowUpStatus(FleetMessage):
    """A site's report on a follow-up request."""

    KIND: ClassVar[str] = "followup-status"

    request_id: str = Field(min_length=1, max_length=64)
    state: FollowUpState
    reason: str | None = Field(default=None, max_length=256)
    frames: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _failure_has_reason(self) -> Self:
        if self.state is FollowUpState.FAILED and not self.reason:
            raise ValueError("a failed follow-up needs a reason")
        return self


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

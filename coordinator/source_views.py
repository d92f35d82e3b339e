"""What the console's candidate, source and follow-up pages show: pydantic models of candidates
to scan, operator labels for training, a source with its light curve, comments and follow-ups,
and the follow-up queue."""

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from coordinator.views import DetectionView, FollowUpView, TargetView


class OperatorLabel(StrEnum):
    """What an operator says a detection is (the training samples' labels)."""

    REAL = "real"
    BOGUS = "bogus"
    ASTEROID = "asteroid"
    VARIABLE = "variable"


class NearbySource(BaseModel):
    """A known source or tracklet near a candidate."""

    target_id: int
    name: str
    status: str
    separation_arcsec: float


class CandidateView(BaseModel):
    """One detection of a target that is still a candidate, as the scanning page shows it."""

    message_id: str
    target_id: int
    target_name: str
    site_id: str
    observed_at: datetime
    ra_deg: float
    dec_deg: float
    mag: float | None
    mag_err: float | None
    filter: str | None
    snr: float
    real_bogus: float
    label: str | None = Field(description="The operator's label on this detection, if any.")
    nearby: list[NearbySource]


class CandidatePage(BaseModel):
    """One page of candidates, newest first, and how many match the filters in all."""

    total: int
    offset: int
    limit: int
    items: list[CandidateView]


class LabelView(BaseModel):
    """An operator's label on a detection, with where its cutouts are (for training to pull)."""

    message_id: str
    label: OperatorLabel
    user_name: str
    at: datetime
    site_id: str
    frame_sha256: str
    observed_at: datetime
    real_bogus: float
    cutouts_url: str = Field(description="The API path of the detection's new/ref/diff stamps.")


class LabelCursor(BaseModel):
    """A place in the label feed: after the label at `at` on detection `message_id` (labels are
    ordered by both, so labels given at one instant are neither lost nor repeated between
    pages). Sent as opaque URL-safe text (`encode`, `decode`)."""

    at: AwareDatetime
    message_id: str = Field(max_length=80, description="'' starts at `at` itself.")

    def encode(self) -> str:
        """The cursor as URL-safe text."""
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "LabelCursor":
        """The cursor `encode` wrote; ValueError for any other text."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not a cursor of the label feed") from exc
        return cls.model_validate_json(raw)


class LabelPage(BaseModel):
    """One page of the label feed, oldest first, and where the next one starts."""

    items: list[LabelView]
    next: str = Field(
        description="Ask again with `after=` this for the labels after these (with none, it is "
        "where this page began); a page shorter than its limit means there are no more yet."
    )


class LabelledDetection(DetectionView):
    """A detection on the source page: a light-curve point, with its operator label."""

    label: str | None
    ra_deg: float
    dec_deg: float
    frame_sha256: str


class UpperLimit(BaseModel):
    """A searched frame that covered the position without a detection: fainter than `mag`."""

    site_id: str
    observed_at: datetime
    filter: str | None
    mag: float


class CommentView(BaseModel):
    """An operator's comment on a target."""

    comment_id: int
    at: datetime
    user_name: str
    text: str


class FollowUpStatusView(BaseModel):
    """One report from the site on a follow-up request."""

    state: str
    reported_at: datetime
    reason: str | None
    exposures_done: int
    exposures_total: int | None


class FollowUpDetail(FollowUpView):
    """A follow-up request with its plan, its progress, why this site and time, and its history."""

    plan: dict[str, Any] | None
    explanation: dict[str, Any] | None
    exposures_done: int
    exposures_total: int | None
    history: list[FollowUpStatusView]


class SourceDetail(TargetView):
    """The source page: a target with every detection, upper limits, fused position error,
    classification, comments and follow-ups."""

    status: str
    promoted_at: datetime | None
    promoted_by: str | None
    position_error_arcsec: float | None
    detections: list[LabelledDetection]
    upper_limits: list[UpperLimit]
    comments: list[CommentView]
    followups: list[FollowUpDetail]


class FollowUpPage(BaseModel):
    """One page of the follow-up queue, newest first, and how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[FollowUpDetail]

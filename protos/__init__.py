"""The wire contract of the fleet: message models, subjects, stream definitions and JSON Schemas.

Everything that crosses a process boundary is defined here and nowhere else. This package
imports only pydantic and the standard library, so every other part of Skyfleet may depend on it.
"""

from protos.base import SCHEMA_VERSION, FleetMessage, stable_message_id
from protos.commands import (
    ExposurePlan,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    ModelRelease,
    SkyTarget,
)
from protos.frames import (
    ClassProbabilities,
    FrameIdentity,
    FrameRejected,
    FrameScore,
    ImageMetrics,
    ModelRef,
    QualityLabel,
    QualityReason,
    RejectReason,
    SkyPosition,
)
from protos.registry import (
    MESSAGE_TYPES,
    MessageDecodeError,
    decode_message,
    decode_subject_message,
    message_kind,
)
from protos.site import (
    CameraConfig,
    LinkState,
    SiteConditions,
    SiteConfig,
    SiteHeartbeat,
    SiteLocation,
)
from protos.transients import (
    EncodedArray,
    FrameSearched,
    TransientCandidate,
    TransientCutouts,
    TransientSearch,
)

__all__ = [
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "CameraConfig",
    "ClassProbabilities",
    "EncodedArray",
    "ExposurePlan",
    "FleetMessage",
    "FollowUpCancel",
    "FollowUpReprioritise",
    "FollowUpRequest",
    "FollowUpState",
    "FollowUpStatus",
    "FrameIdentity",
    "FrameRejected",
    "FrameScore",
    "FrameSearched",
    "ImageMetrics",
    "LinkState",
    "MessageDecodeError",
    "ModelRef",
    "ModelRelease",
    "QualityLabel",
    "QualityReason",
    "RejectReason",
    "SiteConditions",
    "SiteConfig",
    "SiteHeartbeat",
    "SiteLocation",
    "SkyPosition",
    "SkyTarget",
    "TransientCandidate",
    "TransientCutouts",
    "TransientSearch",
    "decode_message",
    "decode_subject_message",
    "message_kind",
    "stable_message_id",
]

"""Which model each message kind is, and strict decoding of bytes from the bus."""

from typing import TypeVar

from pydantic import ValidationError

from protos.base import FleetMessage
from protos.commands import (
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpStatus,
    ModelRelease,
)
from protos.frames import FrameRejected, FrameScore
from protos.site import SiteConfig, SiteHeartbeat
from protos.subjects import kind_of_subject
from protos.transients import FrameSearched, TransientCandidate

M = TypeVar("M", bound=FleetMessage)

MESSAGE_TYPES: dict[str, type[FleetMessage]] = {
    model.KIND: model
    for model in (
        FrameScore,
        FrameRejected,
        TransientCandidate,
        FrameSearched,
        SiteHeartbeat,
        SiteConfig,
        FollowUpRequest,
        FollowUpCancel,
        FollowUpReprioritise,
        FollowUpStatus,
        ModelRelease,
    )
}


class MessageDecodeError(ValueError):
    """A message that is not valid JSON for its kind; `fields` names what is wrong."""

    def __init__(self, kind: str, error: ValidationError | str) -> None:
        if isinstance(error, ValidationError):
            self.fields = [".".join(str(p) for p in e["loc"]) or "<root>" for e in error.errors()]
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in error.errors()
            )
        else:
            self.fields = []
            detail = error
        self.kind = kind
        super().__init__(f"invalid {kind} message: {detail}")


def message_kind(subject: str) -> str:
    """The message kind carried on a subject."""
    return kind_of_subject(subject)


def decode_message(payload: bytes, model: type[M]) -> M:
    """Validate JSON bytes strictly as `model`, raising `MessageDecodeError` naming the fields."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise MessageDecodeError(model.KIND, exc) from None


def decode_subject_message(subject: str, payload: bytes) -> FleetMessage:
    """Decode a message by the subject it arrived on."""
    try:
        kind = kind_of_subject(subject)
    except ValueError as exc:
        raise MessageDecodeError("unknown", str(exc)) from None
    message = decode_message(payload, MESSAGE_TYPES[kind])
    if message.site_id != subject.split(".")[2]:
        raise MessageDecodeError(
            kind, f"site_id: {message.site_id!r} does not match subject {subject!r}"
        )
    return message

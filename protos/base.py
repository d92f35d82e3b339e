"""The envelope every fleet message shares: schema version, stable id, site and UTC times.

`message_id` is stable: it is derived from what the message is about (a frame's sha256, a
request id), never from the moment it was sent, so a resend after a crash or an outage carries
the same id and JetStream's duplicate window (`Nats-Msg-Id`) stores it once.
"""

import hashlib
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
MESSAGE_ID_PATTERN = r"^[a-z0-9-]{1,40}:[0-9a-f]{32}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

SiteId = Annotated[
    str,
    Field(
        pattern=SITE_ID_PATTERN,
        description="Site name usable as one NATS subject token: lower-case letters, digits, '-'.",
    ),
]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="Lower-case hex SHA-256.")]


def _as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a time that UTC cannot hold (year 1 at +14:00, year 9999 at
    -14:00) is a validation error, not an OverflowError escaping the decoder."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years 1-9999 in UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


def _exact_integer(value: object) -> object:
    """Refuse `true` and `1.0` where the version is the integer 1: pydantic's literal check
    compares by equality (`True == 1.0 == 1`), even in strict mode."""
    if type(value) is not int:
        raise ValueError(f"schema version must be an integer, not {type(value).__name__}")
    return value


SchemaVersion = Annotated[Literal[1], BeforeValidator(_exact_integer)]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def stable_message_id(kind: str, *identity: str) -> str:
    """A message id that depends only on the message kind and what it is about.

    Pass the message class's `KIND` rather than spelling it, e.g.
    `stable_message_id(FrameScore.KIND, site_id, sha256)`. The result must never change between
    versions (a test holds literals): it is what dedupes a resend after an upgrade.

    >>> stable_message_id("frame-score", "la-silla", "ab" * 32)[:12]
    'frame-score:'
    """
    digest = hashlib.sha256("\x1f".join((kind, *identity)).encode()).hexdigest()[:32]
    return f"{kind}:{digest}"


class ContractModel(BaseModel):
    """A strict, immutable piece of the contract: unknown fields, loose types and numbers that
    are not finite are errors.

    NaN and ±Infinity are refused in every float field (`allow_inf_nan=False`): no quantity in
    the contract means "not a number", an unknown value is an optional field left out (None),
    and a NaN that got through would reach the store as NULL (SQLite) or poison every mean.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class FleetMessage(ContractModel):
    """Fields common to every message on the bus."""

    KIND: ClassVar[str] = "message"

    schema_version: SchemaVersion = Field(
        default=SCHEMA_VERSION, description="Version of this message's schema."
    )
    message_id: str = Field(
        pattern=MESSAGE_ID_PATTERN,
        description="Stable id, sent as the JetStream Nats-Msg-Id header.",
    )
    site_id: SiteId
    created_at: UtcDatetime = Field(
        default_factory=utc_now, description="When the message was made (UTC)."
    )

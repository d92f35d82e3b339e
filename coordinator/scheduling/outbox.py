"""The command outbox: commands to sites about follow-ups (request, cancel, re-prioritise) are
stored in the transaction that decides them and published afterwards by the dispatcher, so a
coordinator that stops in between still sends them after its restart.

A command's `message_id` is fixed when it is stored (the request id and the command's place
among the request's commands), so a command published twice (a crash after the publish, before
it was marked sent) is kept once by the bus, while a second re-prioritise to the same priority
is a new command.
"""

import json
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, update

from coordinator.store.tables import FollowUpCommand, table_of
from protos import (
    FleetMessage,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    stable_message_id,
)

commands = table_of(FollowUpCommand)
COMMAND_MODELS: dict[str, type[FleetMessage]] = {
    m.KIND: m for m in (FollowUpRequest, FollowUpCancel, FollowUpReprioritise)
}
SEND_BATCH = 500
"""Commands published per pass; the rest go in the next round (a round is seconds)."""


def command_id(conn: Connection, kind: str, site_id: str, request_id: str) -> str:
    """The stable message id of the next command about this request."""
    sequence = conn.execute(
        select(func.count()).where(commands.c.request_id == request_id)
    ).scalar_one()
    return stable_message_id(kind, site_id, request_id, str(sequence + 1))


def enqueue(
    conn: Connection,
    message: FollowUpRequest | FollowUpCancel | FollowUpReprioritise,
    now: datetime,
) -> None:
    """Store a command to publish (inside the caller's transaction)."""
    conn.execute(
        commands.insert().values(
            message_id=message.message_id,
            request_id=message.request_id,
            site_id=message.site_id,
            kind=message.KIND,
            payload=message.model_dump(mode="json"),
            created_at=now,
            sent_at=None,
        )
    )


def cancel_command(
    conn: Connection, site_id: str, request_id: str, reason: str, now: datetime
) -> FollowUpCancel:
    """Store a `FollowUpCancel` for the site that holds the request; returns it."""
    message = FollowUpCancel(
        message_id=command_id(conn, FollowUpCancel.KIND, site_id, request_id),
        site_id=site_id,
        created_at=now,
        request_id=request_id,
        reason=reason,
    )
    enqueue(conn, message, now)
    return message


def unsent_commands(engine: Engine, limit: int = SEND_BATCH) -> list[FleetMessage]:
    """Commands not yet published, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(commands.c.kind, commands.c.payload)
            .where(commands.c.sent_at.is_(None))
            .order_by(commands.c.command_id)
            .limit(limit)
        ).all()
    # Validated from JSON text, as on the wire: the contract is strict with Python objects.
    return [COMMAND_MODELS[r.kind].model_validate_json(json.dumps(r.payload)) for r in rows]


def mark_sent(engine: Engine, message_ids: list[str], now: datetime) -> None:
    """Record that these commands reached the bus."""
    if message_ids:
        with engine.begin() as conn:
            conn.execute(
                update(commands).where(commands.c.message_id.in_(message_ids)).values(sent_at=now)
            )

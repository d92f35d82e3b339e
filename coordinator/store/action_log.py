"""The console's action log: every operator action, who did it (user, role, and how they were
authenticated), on what, with which outcome, when, and the id of the request that asked."""

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from coordinator.store.tables import ActionLogRow, table_of

log_table = table_of(ActionLogRow)


@dataclass(frozen=True)
class ActionEntry:
    """One action as recorded. `via`: 'session', 'bearer' or 'proxy'; `outcome`: 'done', or why
    nothing changed ('not-found', 'not-active')."""

    at: datetime
    user_name: str
    role: str
    via: str
    action: str
    target: str
    detail: str
    outcome: str
    request_id: str


def record_action(conn: Connection, entry: ActionEntry) -> None:
    """Add an action to the log (in the caller's transaction, with the change it made)."""
    conn.execute(insert(log_table).values(**asdict(entry)))


def recent_actions(conn: Connection, limit: int = 200) -> list[ActionEntry]:
    """The newest actions first, at most `limit`."""
    columns = [log_table.c[name] for name in ActionEntry.__dataclass_fields__]
    rows = conn.execute(
        select(*columns).order_by(log_table.c.at.desc(), log_table.c.entry_id.desc()).limit(limit)
    ).all()
    return [ActionEntry(**row._asdict()) for row in rows]

"""Operator actions on the store: re-prioritise or mark a target, cancel a follow-up."""

from datetime import datetime

from sqlalchemy import Connection, update

from coordinator.followup_states import ACTIVE_PHASES, FollowUpPhase
from coordinator.store.tables import FollowUp, Target, table_of


def set_priority(conn: Connection, target_id: int, priority: int) -> bool:
    """Give a target a new follow-up priority (1 is the most urgent); False if unknown."""
    table = table_of(Target)
    result = conn.execute(
        update(table).where(table.c.target_id == target_id).values(priority=priority)
    )
    return result.rowcount == 1


def mark_target(conn: Connection, target_id: int, mark: str | None) -> bool:
    """Mark a target (e.g. 'interesting', 'dismissed'; None clears); False if unknown."""
    table = table_of(Target)
    result = conn.execute(update(table).where(table.c.target_id == target_id).values(mark=mark))
    return result.rowcount == 1


def cancel_followup(conn: Connection, request_id: str, now: datetime) -> bool:
    """Cancel an active follow-up so it is neither tracked nor re-planned; False if it is not
    active (unknown, finished or already cancelled)."""
    table = table_of(FollowUp)
    result = conn.execute(
        update(table)
        .where(table.c.request_id == request_id, table.c.state.in_(list(ACTIVE_PHASES)))
        .values(state=FollowUpPhase.CANCELLED.value, reason="cancelled by operator", updated_at=now)
    )
    return result.rowcount == 1

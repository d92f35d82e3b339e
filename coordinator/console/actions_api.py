"""Operator actions in the console on a target (re-prioritise, mark; the candidate, source and
follow-up actions are in `candidates_api`, `sources_api`, `followups_api`), and `perform`. Each
needs an operator or admin (`Access.actor`) and is recorded in the action log in the same
transaction as the change it makes, with who asked, how they were authenticated and the
request's id; an unknown target or follow-up is recorded too, then answered 404 or 409.
Admins read the log (`GET /api/actions`)."""

import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from coordinator.console.access import Access, Actor
from coordinator.store import actions
from coordinator.store.action_log import ActionEntry, recent_actions, record_action
from protos.base import utc_now

log = logging.getLogger(__name__)

DONE = "done"
NOT_FOUND = "not-found"
NOT_ACTIVE = "not-active"
"""Outcomes recorded in the action log."""
PAGE_MAX = 200
"""The most rows one page of candidates or follow-ups may ask for (a page shows 20-50; a bigger
page is a mistake, or a client walking the table, which should page instead)."""


class PriorityChange(BaseModel):
    priority: int = Field(ge=1, le=10, description="1 is the most urgent.")


class TargetMark(BaseModel):
    mark: str | None = Field(default=None, max_length=32)


def perform(
    engine: Engine, actor: Actor, what: tuple[str, str, str], change: Callable[[Connection], str]
) -> str:
    """Make a change and record it with its actor, in one transaction; `what` is (action,
    target, detail), `change` returns the outcome (`DONE`, or why nothing changed)."""
    action, target, detail = what
    principal = actor.principal
    with engine.begin() as conn:
        outcome = change(conn)
        record_action(
            conn,
            ActionEntry(
                at=utc_now(),
                user_name=principal.name,
                role=principal.role.value,
                via=principal.via.value,
                action=action,
                target=target,
                detail=detail,
                outcome=outcome,
                request_id=actor.request_id,
            ),
        )
    log.info(
        "console action user=%s role=%s via=%s action=%s target=%r outcome=%s request_id=%s",
        principal.name,
        principal.role.value,
        principal.via.value,
        action,
        target,
        outcome,
        actor.request_id,
    )
    return outcome


def found(changed: bool) -> str:
    """The outcome of a change to a target: done, or no such target."""
    return DONE if changed else NOT_FOUND


def action_api(engine: Engine, access: Access) -> APIRouter:
    """The actions (operators and admins) and the action log (admins)."""
    api = APIRouter(prefix="/api")
    Acting = Annotated[Actor, Depends(access.actor)]

    @api.post("/targets/{target_id}/priority")
    def reprioritise(target_id: int, change: PriorityChange, actor: Acting) -> dict[str, object]:
        what = ("target.priority", f"target:{target_id}", f"priority={change.priority}")
        set_it = partial(actions.set_priority, target_id=target_id, priority=change.priority)
        if perform(engine, actor, what, lambda conn: found(set_it(conn))) == NOT_FOUND:
            raise HTTPException(404, f"no target {target_id}")
        return {"target_id": target_id, "priority": change.priority}

    @api.post("/targets/{target_id}/mark")
    def mark(target_id: int, change: TargetMark, actor: Acting) -> dict[str, object]:
        what = ("target.mark", f"target:{target_id}", f"mark={change.mark or ''}")
        set_it = partial(actions.mark_target, target_id=target_id, mark=change.mark)
        if perform(engine, actor, what, lambda conn: found(set_it(conn))) == NOT_FOUND:
            raise HTTPException(404, f"no target {target_id}")
        return {"target_id": target_id, "mark": change.mark}

    @api.get("/actions", dependencies=[Depends(access.auditor)])
    def action_log(limit: int = Query(200, ge=1, le=1000)) -> list[ActionEntry]:
        with engine.connect() as conn:
            return recent_actions(conn, limit)

    return api

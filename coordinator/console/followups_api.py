"""The follow-up queue in the console: requests filtered by state, site and target with their
site's progress; an operator's new request for a source (filter, exposure time, count,
priority), re-prioritise and cancel. The store's actions record each change with the command
the dispatcher sends to the site, which acknowledges it with a status report."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from coordinator.console.access import Access, Actor
from coordinator.console.actions_api import DONE, NOT_ACTIVE, NOT_FOUND, PAGE_MAX, perform
from coordinator.followup_states import FollowUpPhase
from coordinator.settings import CoordinatorSettings
from coordinator.source_views import FollowUpDetail
from coordinator.store import actions, reads
from coordinator.store.source_reads import FollowUpFilter, followup_page
from protos import ExposurePlan
from protos.base import utc_now

TOTAL_HEADER = "X-Total-Count"
"""How many follow-ups match the filters in all (the body holds one page)."""
REQUEST_ID_MAX_CHARS = 64
NO_WINDOW = "no-window"
"""The outcome of a request that no site can observe before its deadline."""


class FollowUpAsk(BaseModel):
    """An operator's follow-up request for a source: how to observe it, and how urgently."""

    filter: str = Field(min_length=1, max_length=32)
    exptime_s: float = Field(gt=0.0, le=3600.0)
    count: int = Field(ge=1, le=100)
    priority: int = Field(default=5, ge=1, le=10, description="1 is the most urgent.")
    site_id: str | None = Field(
        default=None, min_length=1, max_length=32, description="None: the best site now."
    )


class FollowUpPriority(BaseModel):
    priority: int = Field(ge=1, le=10, description="1 is the most urgent.")


def outcome_of(changed: bool, conn: Connection, request_id: str) -> str:
    """Done, or why not: no such request, or it is no longer active."""
    if changed:
        return DONE
    return NOT_FOUND if reads.followup_state(conn, request_id) is None else NOT_ACTIVE


def raise_unless_done(outcome: str, request_id: str) -> None:
    if outcome == NOT_FOUND:
        raise HTTPException(404, f"no follow-up {request_id}")
    if outcome == NOT_ACTIVE:
        raise HTTPException(409, f"follow-up {request_id} is not active")


def ask_for_followup(
    engine: Engine, settings: CoordinatorSettings, actor: Actor, target_id: int, ask: FollowUpAsk
) -> str:
    """Plan an operator's follow-up request for a target and record it (with its command to the
    site) and the action; the new request's id, or an HTTP error saying why not."""
    plan = ExposurePlan(filter=ask.filter, exptime_s=ask.exptime_s, count=ask.count)
    detail = f"{ask.count}x{ask.exptime_s:g}s {ask.filter} priority={ask.priority}"
    made: list[str] = []
    refused: list[str] = []

    def ask_for(conn: Connection) -> str:
        try:
            request_id = actions.request_followup(
                conn,
                target_id,
                plan,
                ask.priority,
                actor.principal.name,
                utc_now(),
                site_id=ask.site_id,
                settings=settings,
            )
        except (actions.UnknownTarget, actions.UnknownSite) as exc:
            refused.append(str(exc))
            return NOT_FOUND
        if request_id is None:
            return NO_WINDOW
        made.append(request_id)
        return DONE

    outcome = perform(engine, actor, ("followup.request", f"target:{target_id}", detail), ask_for)
    if outcome == NOT_FOUND:
        raise HTTPException(404, refused[0])
    if outcome == NO_WINDOW:
        where = f"site {ask.site_id}" if ask.site_id else "no site"
        raise HTTPException(409, f"{where} can observe target {target_id} before its deadline")
    return made[0]


def followups_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """The queue (any reader) and the request, re-prioritise and cancel actions (operators);
    `settings` plan an operator's request as the dispatcher plans its own."""
    api = APIRouter(prefix="/api")
    Acting = Annotated[Actor, Depends(access.actor)]

    @api.get("/followups", dependencies=[Depends(access.reader)])
    def queue(
        response: Response,
        state: Annotated[list[FollowUpPhase] | None, Query()] = None,
        site_id: str | None = Query(None, min_length=1, max_length=32),
        target_id: int | None = Query(None, ge=1),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=PAGE_MAX),
    ) -> list[FollowUpDetail]:
        states = tuple(s.value for s in state or ())
        with engine.connect() as conn:
            page = followup_page(conn, FollowUpFilter(states, site_id, target_id, offset, limit))
        response.headers[TOTAL_HEADER] = str(page.total)
        return page.items

    @api.post("/sources/{target_id}/followups")
    def request(target_id: int, ask: FollowUpAsk, actor: Acting) -> dict[str, object]:
        request_id = ask_for_followup(engine, settings, actor, target_id, ask)
        return {"target_id": target_id, "request_id": request_id}

    def change(
        action: str, request_id: str, actor: Actor, detail: str, do: Callable[[Connection], bool]
    ) -> None:
        what = (action, f"followup:{request_id[:REQUEST_ID_MAX_CHARS]}", detail)
        outcome = perform(engine, actor, what, lambda conn: outcome_of(do(conn), conn, request_id))
        raise_unless_done(outcome, request_id)

    @api.post("/followups/{request_id}/priority")
    def reprioritise(request_id: str, new: FollowUpPriority, actor: Acting) -> dict[str, object]:
        change(
            "followup.priority",
            request_id,
            actor,
            f"priority={new.priority}",
            lambda conn: actions.reprioritise_followup(conn, request_id, new.priority, utc_now()),
        )
        return {"request_id": request_id, "priority": new.priority}

    @api.post("/followups/{request_id}/cancel")
    def cancel(request_id: str, actor: Acting) -> dict[str, object]:
        change(
            "followup.cancel",
            request_id,
            actor,
            "",
            lambda conn: actions.cancel_followup(conn, request_id, utc_now()),
        )
        with engine.connect() as conn:
            return {"request_id": request_id, "state": reads.followup_state(conn, request_id)}

    return api

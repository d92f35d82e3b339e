"""The source page's API: a target with every detection, its light curve, fused position,
classification, comments and follow-ups; and an operator's comment on it."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, StringConstraints
from sqlalchemy import Connection, Engine, select

from coordinator.console.access import Access, Actor
from coordinator.console.actions_api import DONE, NOT_FOUND, perform
from coordinator.source_views import SourceDetail
from coordinator.store.comments import add_comment
from coordinator.store.source_reads import source_detail, targets
from coordinator.store.tables import COMMENT_MAX_CHARS
from protos.base import utc_now


class NewComment(BaseModel):
    """An operator's comment on a target."""

    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=COMMENT_MAX_CHARS)
    ]


def target_exists(conn: Connection, target_id: int) -> bool:
    """Whether there is a target with this id."""
    return (
        conn.execute(select(targets.c.target_id).where(targets.c.target_id == target_id)).first()
        is not None
    )


def sources_api(engine: Engine, access: Access) -> APIRouter:
    """The source read (any reader) and commenting (operators and admins)."""
    api = APIRouter(prefix="/api")
    Acting = Annotated[Actor, Depends(access.actor)]

    @api.get("/sources/{target_id}", dependencies=[Depends(access.reader)])
    def source(target_id: int) -> SourceDetail:
        with engine.connect() as conn:
            detail = source_detail(conn, target_id)
        if detail is None:
            raise HTTPException(404, f"no source {target_id}")
        return detail

    @api.post("/sources/{target_id}/comments")
    def comment(target_id: int, new: NewComment, actor: Acting) -> dict[str, object]:
        what = ("target.comment", f"target:{target_id}", f"chars={len(new.text)}")
        user, now = actor.principal.name, utc_now()

        def add(conn: Connection) -> str:
            if not target_exists(conn, target_id):
                return NOT_FOUND
            add_comment(conn, target_id, user, new.text, now)
            return DONE

        if perform(engine, actor, what, add) == NOT_FOUND:
            raise HTTPException(404, f"no source {target_id}")
        return {"target_id": target_id, "user_name": user}

    return api

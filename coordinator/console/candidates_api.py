"""Candidate scanning in the console: new candidates to scan (filtered, newest first, paged),
their cutouts, an operator's label on a candidate (save it as a source, reject it, call it an
asteroid or a variable), and the label feed the fleet's training pulls (from a time, then
page by page with each answer's `next` cursor)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import Engine

from coordinator.console.access import Access, Actor
from coordinator.console.actions_api import NOT_FOUND, PAGE_MAX, found, perform
from coordinator.source_views import CandidatePage, LabelCursor, LabelPage, OperatorLabel
from coordinator.store import reads
from coordinator.store.labels import label_page, label_target
from coordinator.store.source_reads import CandidateFilter, candidate_page
from coordinator.views import CutoutView
from protos.base import MESSAGE_ID_PATTERN, utc_now

LABELS_PAGE_MAX = 5000
"""The most labels one pull returns: training pages on with the answer's `next` cursor."""
CURSOR_MAX_CHARS = 400
"""Longer than any `next` the label feed gives (a time and a message id, base64)."""


class LabelChange(BaseModel):
    """An operator's verdict on a candidate."""

    label: OperatorLabel


def candidates_api(engine: Engine, access: Access) -> APIRouter:
    """Reads (any reader) and the label action (operators and admins)."""
    api = APIRouter(prefix="/api")
    Reading = Depends(access.reader)
    Acting = Annotated[Actor, Depends(access.actor)]

    @api.get("/candidates", dependencies=[Reading])
    def candidates(
        site_id: str | None = Query(None, min_length=1, max_length=32),
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        min_real_bogus: float = Query(0.0, ge=0.0, le=1.0),
        max_real_bogus: float = Query(1.0, ge=0.0, le=1.0),
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=PAGE_MAX),
    ) -> CandidatePage:
        chosen = CandidateFilter(
            site_id, since, until, min_real_bogus, max_real_bogus, offset, limit
        )
        with engine.connect() as conn:
            return candidate_page(conn, chosen)

    @api.get("/cutouts/{message_id:path}", dependencies=[Reading])
    def cutout(message_id: str = Path(pattern=MESSAGE_ID_PATTERN)) -> CutoutView:
        with engine.connect() as conn:
            view = reads.cutout(conn, message_id)
        if view is None:
            raise HTTPException(404, f"no detection {message_id}")
        return view

    @api.get("/labels", dependencies=[Reading])
    def labels(
        since: AwareDatetime | None = None,
        after: str | None = Query(None, max_length=CURSOR_MAX_CHARS),
        limit: int = Query(1000, ge=1, le=LABELS_PAGE_MAX),
    ) -> LabelPage:
        if after is not None:
            try:
                start = LabelCursor.decode(after)
            except ValueError as exc:
                raise HTTPException(422, "after: not a `next` this feed gave") from exc
        elif since is not None:
            start = LabelCursor(at=since, message_id="")
        else:
            raise HTTPException(422, "give since (a time) or after (the last page's `next`)")
        with engine.connect() as conn:
            return label_page(conn, start, limit)

    @api.post("/targets/{target_id}/label")
    def label(target_id: int, change: LabelChange, actor: Acting) -> dict[str, object]:
        what = ("target.label", f"target:{target_id}", f"label={change.label.value}")
        user = actor.principal.name
        now: datetime = utc_now()
        outcome = perform(
            engine,
            actor,
            what,
            lambda conn: found(label_target(conn, target_id, change.label, user, now)),
        )
        if outcome == NOT_FOUND:
            raise HTTPException(404, f"no target {target_id}")
        return {"target_id": target_id, "label": change.label.value}

    return api

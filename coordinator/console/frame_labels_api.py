"""Operators' quality labels on frames in the console: label a frame good, medium or bad
(operators and admins, recorded in the action log as `actions_api.perform` records every action),
and read a frame's labels (any reader). A frame is named by its score's message id, as the site
page lists it; the label is kept on the frame's sha256 (`coordinator.store.frame_labels`). An
unknown frame is recorded, then answered 404; an unknown label is a 422 naming the labels."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from coordinator.console.access import Access, Actor
from coordinator.console.actions_api import DONE, NOT_FOUND, perform
from coordinator.store.frame_labels import (
    NOTE_MAX_CHARS,
    FrameLabelView,
    add_frame_label,
    labels_of_frame,
    scored_frame,
)
from protos.base import MESSAGE_ID_PATTERN, utc_now
from protos.frames import QualityLabel

FrameId = Annotated[
    str, Path(pattern=MESSAGE_ID_PATTERN, description="The frame score's message id.")
]


class FrameLabelChange(BaseModel):
    """An operator's verdict on a frame's quality."""

    label: QualityLabel
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


class FrameLabels(BaseModel):
    """A frame's labels: the one that counts (the latest), and all of them, newest first."""

    frame_sha256: str
    site_id: str
    current: FrameLabelView | None
    history: list[FrameLabelView]


def _no_frame(message_id: str) -> HTTPException:
    return HTTPException(404, f"no frame {message_id!r}: no site scored it")


def frame_labels_api(engine: Engine, access: Access) -> APIRouter:
    """The frame label action (operators and admins) and a frame's labels (any reader)."""
    api = APIRouter(prefix="/api")
    Acting = Annotated[Actor, Depends(access.actor)]

    @api.post("/frames/{message_id}/label")
    def label(message_id: FrameId, change: FrameLabelChange, actor: Acting) -> FrameLabelView:
        what = ("frame.label", f"frame:{message_id}", f"label={change.label.value}")
        written: list[FrameLabelView] = []

        def write(conn: Connection) -> str:
            frame = scored_frame(conn, message_id)
            if frame is None:
                return NOT_FOUND
            site_id, sha256 = frame
            view = FrameLabelView(
                frame_sha256=sha256,
                site_id=site_id,
                label=change.label,
                user_name=actor.principal.name,
                at=utc_now(),
                note=change.note,
            )
            add_frame_label(conn, view)
            written.append(view)
            return DONE

        if perform(engine, actor, what, write) == NOT_FOUND:
            raise _no_frame(message_id)
        return written[0]

    @api.get("/frames/{message_id}/labels", dependencies=[Depends(access.reader)])
    def labels(message_id: FrameId) -> FrameLabels:
        with engine.connect() as conn:
            frame = scored_frame(conn, message_id)
            if frame is None:
                raise _no_frame(message_id)
            history = labels_of_frame(conn, frame[1])
        return FrameLabels(
            frame_sha256=frame[1],
            site_id=frame[0],
            current=history[0] if history else None,
            history=history,
        )

    return api

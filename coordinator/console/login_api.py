"""Logging in and out of the console, and who the console thinks you are.

`POST /api/login` (name and token) opens a server-side session and sets its cookie: HttpOnly
(the page's script cannot read it), SameSite=Strict (no other site's page makes the browser
send it), Secure when `console_https`; it lasts `console_session_hours`. `POST /api/logout`
ends it. `GET /api/me` says who you are, what you may do and your session's CSRF token (for a
trusted proxy's user who may act, it opens the session that carries that token).
"""

import logging
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from coordinator.console.access import (
    SESSION_COOKIE,
    Access,
    Principal,
    Via,
    client_address,
    unauthorized,
)
from coordinator.settings import CoordinatorSettings
from coordinator.store.roles import Role
from coordinator.store.sessions import SessionKind, close_session, open_session, session_by_id
from coordinator.store.users import user_by_login
from protos.base import utc_now

log = logging.getLogger(__name__)


class Login(BaseModel):
    """A console user's name and token (from `skyfleet users add`)."""

    name: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    """Who the console thinks you are and what you may do."""

    name: str | None = Field(description="None: not logged in.")
    role: Role | None
    via: str | None = Field(description="'session', 'bearer' or 'proxy'.")
    csrf_token: str | None = Field(description="Send it as X-CSRF-Token with every action.")
    may_read: bool
    may_act: bool
    may_audit: bool


def me_of(principal: Principal, csrf_token: str | None) -> Me:
    """The `Me` of a known user."""
    return Me(
        name=principal.name,
        role=principal.role,
        via=principal.via.value,
        csrf_token=csrf_token,
        may_read=True,
        may_act=principal.role.may_act,
        may_audit=principal.role.may_audit,
    )


def nobody(*, may_read: bool) -> Me:
    """The `Me` of a client that has not logged in (it may read on loopback)."""
    return Me(
        name=None,
        role=None,
        via=None,
        csrf_token=None,
        may_read=may_read,
        may_act=False,
        may_audit=False,
    )


def login_api(engine: Engine, settings: CoordinatorSettings, access: Access) -> APIRouter:
    """The login, logout and `me` endpoints (open to everyone)."""
    api = APIRouter(prefix="/api")
    lifetime = timedelta(hours=settings.console_session_hours)

    def set_session_cookie(response: Response, session_id: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(lifetime.total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=settings.console_https,
        )

    @api.post("/login")
    def login(body: Login, request: Request, response: Response) -> Me:
        with engine.begin() as conn:
            user = user_by_login(conn, body.name, body.token)
            opened = None
            if user is not None and user.active:
                if previous := request.cookies.get(SESSION_COOKIE):
                    close_session(conn, previous)  # one browser, one session
                opened = open_session(conn, user.name, SessionKind.LOGIN, utc_now(), lifetime)
        if user is None or opened is None:
            # the name tried is not logged: someone may have pasted their token into it
            reason = "wrong name or token" if user is None else f"user {user.name} was revoked"
            log.warning(
                "console login refused client=%s reason=%s", client_address(request), reason
            )
            raise unauthorized(reason)
        session_id, session = opened
        set_session_cookie(response, session_id)
        log.info("console login user=%s role=%s", user.name, user.role.value)
        return me_of(Principal(user.name, user.role, Via.SESSION, session), session.csrf_token)

    @api.post("/logout")
    def logout(request: Request, response: Response) -> dict[str, bool]:
        session_id = request.cookies.get(SESSION_COOKIE)
        session = None
        if session_id:
            with engine.begin() as conn:
                session = session_by_id(conn, session_id, utc_now())
                close_session(conn, session_id)
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=settings.console_https,
        )
        if session is not None:
            log.info("console logout user=%s", session.user_name)
        return {"logged_out": session is not None}

    @api.get("/me")
    def me(request: Request, response: Response) -> Me:
        principal = access.identify(request)
        if principal is None:
            return nobody(may_read=access.may_read_anonymously(request))
        session = principal.session
        if session is None and principal.via is Via.PROXY and principal.role.may_act:
            with engine.begin() as conn:
                session_id, session = open_session(
                    conn, principal.name, SessionKind.PROXY, utc_now(), lifetime
                )
            set_session_cookie(response, session_id)
        return me_of(principal, None if session is None else session.csrf_token)

    return api

"""Who may do what in the ops console.

A request is someone's in the first of these ways that applies:
1. **a trusted proxy's user**: the request comes straight from an address in `trusted_proxies`
   and carries `proxy_user_header` (oauth2-proxy's `X-Forwarded-User`); the role is the console
   user's of that name, or `proxy_default_role` for others. From any other address the header
   is ignored, so nobody can forge it by sending it themselves;
2. **a Bearer token** (`Authorization: Bearer TOKEN`, for scripts): a console user's own token;
3. **the session cookie** of a browser that logged in (`POST /api/login` with name and token).

Reads need any of them (viewer and up), or, with `loopback_reads`, a client on this machine.
Actions need the operator or admin role and, unless by a Bearer token (which a browser never
adds by itself), the session's CSRF token in `X-CSRF-Token`: a page elsewhere can make a
browser send its cookie, but cannot read the token. No token, cookie or CSRF value is logged.
"""

import ipaddress
import logging
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Request, Response, status
from sqlalchemy import Connection, Engine

from coordinator.settings import CoordinatorSettings
from coordinator.store.roles import Role, is_user_name
from coordinator.store.sessions import SessionKind, SessionView, session_by_id
from coordinator.store.users import ConsoleUserView, user_by_token, user_named
from protos.base import utc_now

log = logging.getLogger(__name__)

SESSION_COOKIE = "skyfleet_session"
CSRF_HEADER = "X-CSRF-Token"
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
"""A client's own request id is kept when it looks like one; otherwise the console makes one."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Via(StrEnum):
    """How a request proved whose it is."""

    PROXY = "proxy"
    BEARER = "bearer"
    SESSION = "session"


@dataclass(frozen=True)
class Principal:
    """Whose request it is. `session`: the browser session whose CSRF token guards its actions
    (None for a Bearer token, or a proxy's user who has not asked `/api/me` yet)."""

    name: str
    role: Role
    via: Via
    session: SessionView | None = None


@dataclass(frozen=True)
class Actor:
    """Who is acting, and the id of the request (recorded with the action, sent back in
    `X-Request-ID`)."""

    principal: Principal
    request_id: str


def client_address(request: Request) -> IpAddress | None:
    """The address of the peer that sent the request (never a header's claim)."""
    host = request.client.host if request.client else None
    try:
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client how to authenticate."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def request_id(request: Request) -> str:
    """The client's `X-Request-ID` if it is a plausible id, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex


class Access:
    """The console's access rules as FastAPI dependencies (`reader`, `actor`, `auditor`)."""

    def __init__(self, engine: Engine, settings: CoordinatorSettings) -> None:
        self.engine = engine
        self.settings = settings

    def identify(self, request: Request) -> Principal | None:
        """Whose request this is, or None for nobody. A wrong or revoked Bearer token, or a
        proxy's user who may not come in, is refused here (401/403) rather than read as
        nobody, so the client learns why."""
        with self.engine.connect() as conn:
            principal = self._from_proxy(conn, request)
            if principal is None and (token := bearer_token(request)) is not None:
                principal = self._from_bearer(conn, token)
            if principal is None:
                principal = self._from_cookie(conn, request)
        return principal

    def session_of(self, conn: Connection, request: Request) -> SessionView | None:
        """The open session of the request's cookie, if any."""
        session_id = request.cookies.get(SESSION_COOKIE)
        return None if not session_id else session_by_id(conn, session_id, utc_now())

    def is_trusted_proxy(self, request: Request) -> bool:
        """Whether the request comes straight from a configured authenticating proxy."""
        address = client_address(request)
        return address is not None and any(
            address in network for network in self.settings.trusted_proxies
        )

    def _from_proxy(self, conn: Connection, request: Request) -> Principal | None:
        name = request.headers.get(self.settings.proxy_user_header)
        if name is None or not self.is_trusted_proxy(request):
            return None  # a header from anyone else is ignored
        if not is_user_name(name):
            raise forbidden(f"the proxy's {self.settings.proxy_user_header} is not a user name")
        user = user_named(conn, name)
        if user is not None and not user.active:
            raise forbidden(f"user {name} was revoked")
        if user is None and not self.settings.proxy_unknown_users:
            raise forbidden(f"{name} is not a console user (ask an admin: skyfleet users add)")
        role = user.role if user is not None else self.settings.proxy_default_role
        session = self.session_of(conn, request)
        if session is not None and session.user_name != name:
            session = None
        return Principal(name, role, Via.PROXY, session)

    def _from_bearer(self, conn: Connection, token: str) -> Principal:
        user = user_by_token(conn, token)
        if user is None:
            raise unauthorized("the Bearer token is not a console user's token")
        return Principal(user.name, self._active_role(user), Via.BEARER)

    def _from_cookie(self, conn: Connection, request: Request) -> Principal | None:
        session = self.session_of(conn, request)
        if session is None or session.via is not SessionKind.LOGIN:
            return None  # no session, or it ended: the page offers the login form again
        user = user_named(conn, session.user_name)
        if user is None or not user.active:
            return None
        return Principal(user.name, user.role, Via.SESSION, session)

    @staticmethod
    def _active_role(user: ConsoleUserView) -> Role:
        if not user.active:
            raise unauthorized(f"user {user.name} was revoked: its token no longer works")
        return user.role

    def may_read_anonymously(self, request: Request) -> bool:
        """Whether this client may read without logging in (on loopback, if allowed)."""
        address = client_address(request)
        return self.settings.loopback_reads and address is not None and address.is_loopback

    def reader(self, request: Request) -> Principal | None:
        """Allow any console user, and loopback clients when `loopback_reads` is on."""
        principal = self.identify(request)
        if principal is None and not self.may_read_anonymously(request):
            raise unauthorized("log in to read the console (POST /api/login, or a Bearer token)")
        return principal

    def may_read(self, request: Request) -> bool:
        """Whether the request's client may still read (`reader` without the exception)."""
        try:
            self.reader(request)
        except HTTPException:
            return False
        return True

    def actor(self, request: Request, response: Response) -> Actor:
        """Allow operators and admins; a browser's request also needs its CSRF token."""
        principal = self.identify(request)
        if principal is None:
            raise unauthorized("actions need a login as an operator or admin")
        if not principal.role.may_act:
            self._refuse(principal, "role")
            raise forbidden(
                f"{principal.name} is a {principal.role.value}: "
                "actions need the operator or admin role"
            )
        if principal.via is not Via.BEARER and not (
            principal.session is not None
            and principal.session.csrf_matches(request.headers.get(CSRF_HEADER))
        ):
            self._refuse(principal, "csrf")
            raise forbidden(
                f"this action needs your session's {CSRF_HEADER} header (GET /api/me gives it)"
            )
        actor = Actor(principal, request_id(request))
        response.headers[REQUEST_ID_HEADER] = actor.request_id
        return actor

    def auditor(self, request: Request) -> Principal:
        """Allow admins only (the action log)."""
        principal = self.identify(request)
        if principal is None:
            raise unauthorized("the action log needs a login as an admin")
        if not principal.role.may_audit:
            raise forbidden(f"{principal.name} is a {principal.role.value}: the log is for admins")
        return principal

    @staticmethod
    def _refuse(principal: Principal, reason: str) -> None:
        log.warning(
            "console action refused user=%s role=%s via=%s reason=%s",
            principal.name,
            principal.role.value,
            principal.via.value,
            reason,
        )

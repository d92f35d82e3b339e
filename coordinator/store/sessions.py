"""Console sessions, kept on the server: a random session id (the cookie's value, stored only as
its SHA-256, like tokens in `coordinator.store.users`), whose session it is, its CSRF token and
when it ends. Logging out or revoking the user deletes the row, so the cookie stops working at
once; expired rows are swept whenever a session is opened."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, delete, insert, select

from coordinator.store.tables import ConsoleSession, table_of
from coordinator.store.users import TOKEN_BYTES, digests_match, token_digest

sessions = table_of(ConsoleSession)


class SessionKind(StrEnum):
    """How a session was opened: by logging in with a token, or for a user an authenticating
    proxy vouches for on every request (that session only carries the CSRF token)."""

    LOGIN = "login"
    PROXY = "proxy"


@dataclass(frozen=True)
class SessionView:
    """An open session, without its id."""

    user_name: str
    via: SessionKind
    csrf_token: str
    expires_at: datetime

    def csrf_matches(self, given: str | None) -> bool:
        """Whether a request's `X-CSRF-Token` is this session's (constant time)."""
        return given is not None and digests_match(given, self.csrf_token)


def open_session(
    conn: Connection, user_name: str, via: SessionKind, now: datetime, lifetime: timedelta
) -> tuple[str, SessionView]:
    """Open a session for `user_name`; returns its id (for the cookie, never stored) and the
    session. Sweeps every expired session on the way."""
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
    session_id = secrets.token_urlsafe(TOKEN_BYTES)
    view = SessionView(
        user_name=user_name,
        via=via,
        csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
        expires_at=now + lifetime,
    )
    conn.execute(
        insert(sessions).values(
            session_sha256=token_digest(session_id),
            user_name=user_name,
            via=via.value,
            csrf_token=view.csrf_token,
            created_at=now,
            expires_at=view.expires_at,
        )
    )
    return session_id, view


def session_by_id(conn: Connection, session_id: str, now: datetime) -> SessionView | None:
    """The open, unexpired session with this id, or None."""
    digest = token_digest(session_id)
    row = conn.execute(
        select(sessions).where(sessions.c.session_sha256 == digest, sessions.c.expires_at > now)
    ).first()
    if row is None or not digests_match(digest, row.session_sha256):
        return None
    return SessionView(
        user_name=row.user_name,
        via=SessionKind(row.via),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
    )


def close_session(conn: Connection, session_id: str) -> bool:
    """End a session (logging out); False if there was none with this id."""
    result = conn.execute(
        delete(sessions).where(sessions.c.session_sha256 == token_digest(session_id))
    )
    return result.rowcount == 1

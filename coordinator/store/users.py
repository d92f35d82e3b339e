"""Console users and their tokens: issuing one (a random 32-byte token, shown once, stored only
as its SHA-256), finding a user by name and token or by token alone, listing and revoking.

Why a fast hash (SHA-256) and not a password hash (bcrypt, scrypt, Argon2): a slow, salted hash
protects *passwords*, which people pick from a space small enough to enumerate, so a stolen table
is attacked by trying billions of likely passwords, and only making each try expensive helps. A
token here is 32 bytes from the operating system's CSPRNG (`secrets.token_urlsafe`): 256 bits
that nobody chose. Whoever reads the table (a backup, a dump) must find a preimage of SHA-256 by
brute force, 2^255 tries on average, which no slowness factor changes; no dictionary exists to
precompute, so a salt adds nothing either. The fast hash lets every scripted request be checked
in microseconds, and lets a bearer token be found by its digest (an indexed column) instead of
trying every user's slow hash. Where a stored digest is compared with one computed from what a
client sent, the comparison is `hmac.compare_digest` (constant time).
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from coordinator.store.roles import Role, is_user_name
from coordinator.store.tables import ConsoleSession, ConsoleUser, table_of

TOKEN_BYTES = 32
"""Random bytes in a token (256 bits; `token_urlsafe` writes them as 43 characters)."""

users = table_of(ConsoleUser)
sessions = table_of(ConsoleSession)

_NO_DIGEST = "0" * 64
"""Compared with when no such user exists, so a wrong name takes as long as a wrong token."""


class UserError(ValueError):
    """A user that cannot be added or revoked as asked (its message says why)."""


@dataclass(frozen=True)
class ConsoleUserView:
    """A console user as the console and the command line see it: never its token or digest."""

    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the user's token still works (it has not been revoked)."""
        return self.revoked_at is None


def new_token() -> str:
    """A fresh random token (URL-safe text, `TOKEN_BYTES` of entropy)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """The SHA-256 of a token, as stored (hex); see the module's docstring for why SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_match(given: str, stored: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(given.encode("ascii"), stored.encode("ascii"))


def _view(row: Row[Any]) -> ConsoleUserView:
    return ConsoleUserView(
        name=row.name, role=Role(row.role), created_at=row.created_at, revoked_at=row.revoked_at
    )


def add_user(
    conn: Connection, name: str, role: Role, now: datetime, *, replace: bool = False
) -> str:
    """Add a user with a new token and return the token (the only time it exists outside the
    caller). A revoked user of that name is given the new token and role and is active again;
    an active one is refused unless `replace` (then its old token and sessions stop working)."""
    if not is_user_name(name):
        raise UserError(
            f"{name!r} is not a user name: letters, digits and . _ @ + - (at most 64), "
            "starting with a letter or a digit"
        )
    existing = conn.execute(select(users).where(users.c.name == name)).first()
    if existing is not None and existing.revoked_at is None and not replace:
        raise UserError(f"user {name} exists ({existing.role}); revoke it first for a new token")
    token = new_token()
    values = {
        "role": Role(role).value,
        "token_sha256": token_digest(token),
        "created_at": now,
        "revoked_at": None,
    }
    if existing is None:
        conn.execute(insert(users).values(name=name, **values))
    else:
        conn.execute(update(users).where(users.c.name == name).values(**values))
        conn.execute(delete(sessions).where(sessions.c.user_name == name))
    return token


def user_named(conn: Connection, name: str) -> ConsoleUserView | None:
    """The user called `name` (active or revoked), or None."""
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _view(row)


def user_by_login(conn: Connection, name: str, token: str) -> ConsoleUserView | None:
    """The user called `name` if `token` is its token (active or revoked: the caller says which
    to the client), else None. Unknown names and wrong tokens take the same time."""
    row = conn.execute(select(users).where(users.c.name == name)).first()
    stored = _NO_DIGEST if row is None else row.token_sha256
    if not digests_match(token_digest(token), stored) or row is None:
        return None
    return _view(row)


def user_by_token(conn: Connection, token: str) -> ConsoleUserView | None:
    """The user whose token this is (active or revoked), or None. Found by the token's digest:
    timing can tell at most something about a SHA-256 of the token, which says nothing about
    the token itself; the digest is then compared again in constant time."""
    digest = token_digest(token)
    row = conn.execute(select(users).where(users.c.token_sha256 == digest)).first()
    if row is None or not digests_match(digest, row.token_sha256):
        return None
    return _view(row)


def list_users(conn: Connection) -> list[ConsoleUserView]:
    """Every user, active and revoked, by name."""
    return [_view(row) for row in conn.execute(select(users).order_by(users.c.name)).all()]


def revoke_user(conn: Connection, name: str, now: datetime) -> None:
    """Revoke a user: its token stops working and its sessions end at once. The row stays, so
    the action log keeps naming who did what."""
    user = user_named(conn, name)
    if user is None:
        raise UserError(f"no console user {name}")
    if not user.active:
        raise UserError(f"user {name} was already revoked at {user.revoked_at:%Y-%m-%d %H:%M} UTC")
    conn.execute(update(users).where(users.c.name == name).values(revoked_at=now))
    conn.execute(delete(sessions).where(sessions.c.user_name == name))

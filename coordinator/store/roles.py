"""The console's roles and what each may do. Kept apart from the tables so the settings and the
command line can name a role without loading SQLAlchemy."""

import re
from enum import StrEnum

USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
"""A console user's name: a login name or an e-mail address (what an authenticating proxy such as
oauth2-proxy passes), at most 64 characters, nothing a log line or a table could be confused by."""


class Role(StrEnum):
    """What a console user may do: a viewer reads; an operator also acts (priorities, marks,
    cancelling follow-ups); an admin also reads the action log."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def may_act(self) -> bool:
        """Whether this role may change anything (the console's POST actions)."""
        return self in (Role.OPERATOR, Role.ADMIN)

    @property
    def may_audit(self) -> bool:
        """Whether this role may read who did what (the action log)."""
        return self is Role.ADMIN


def is_user_name(name: str) -> bool:
    """Whether `name` is a valid console user name (`USER_NAME_PATTERN`)."""
    return re.fullmatch(USER_NAME_PATTERN, name) is not None

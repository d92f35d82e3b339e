"""Who may do what in the console: reads are open to loopback clients (others need the token);
actions always need the token, and are disabled when none is configured."""

import ipaddress
import secrets

from fastapi import HTTPException, Request, status


def is_loopback(host: str | None) -> bool:
    """Whether a client address is on this machine."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time check of a token; never true when no token is configured."""
    return expected is not None and given is not None and secrets.compare_digest(given, expected)


class Access:
    """FastAPI dependencies enforcing the console's access rules."""

    def __init__(self, action_token: str | None) -> None:
        self.action_token = action_token

    def reader(self, request: Request) -> None:
        """Allow loopback clients, or any client with the token."""
        client = request.client.host if request.client else None
        if not (is_loopback(client) or token_matches(bearer_token(request), self.action_token)):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "read access needs the token")

    def actor(self, request: Request) -> None:
        """Allow only requests carrying the action token."""
        if self.action_token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "actions are disabled: no action token configured"
            )
        if not token_matches(bearer_token(request), self.action_token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this action needs the token")

"""Subject names on the bus. Build them here; never format subjects at a call site.

Sites publish under `fleet.site.<site_id>.>` and receive commands under `fleet.cmd.<site_id>.>`.
"""

import re

from protos.base import SITE_ID_PATTERN, FleetMessage

SITE_ROOT = "fleet.site"
COMMAND_ROOT = "fleet.cmd"
DEAD_LETTER_ROOT = "fleet.deadletter"

# message KIND -> (root, suffix after the site token)
_ROUTES: dict[str, tuple[str, str]] = {
    "frame-score": (SITE_ROOT, "frame.scored"),
    "frame-rejected": (SITE_ROOT, "frame.rejected"),
    "site-heartbeat": (SITE_ROOT, "heartbeat"),
    "site-config": (SITE_ROOT, "config"),
    "transient-candidate": (SITE_ROOT, "transient.candidate"),
    "frame-searched": (SITE_ROOT, "transient.searched"),
    "followup-status": (SITE_ROOT, "followup.status"),
    "followup-request": (COMMAND_ROOT, "followup.request"),
    "followup-cancel": (COMMAND_ROOT, "followup.cancel"),
    "followup-priority": (COMMAND_ROOT, "followup.priority"),
    "model-release": (COMMAND_ROOT, "model.release"),
}
_KINDS = {route: kind for kind, route in _ROUTES.items()}
_SITE_ID = re.compile(SITE_ID_PATTERN)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _checked_site(site_id: str) -> str:
    if not _SITE_ID.match(site_id):
        raise ValueError(
            f"site_id {site_id!r} is not a valid site name (pattern {SITE_ID_PATTERN})"
        )
    return site_id


def subject_for_kind(kind: str, site_id: str) -> str:
    """The subject a message of this kind for this site travels on."""
    try:
        root, suffix = _ROUTES[kind]
    except KeyError:
        raise ValueError(f"no subject for message kind {kind!r}") from None
    return f"{root}.{_checked_site(site_id)}.{suffix}"


def subject_for(message: FleetMessage) -> str:
    """The subject this message travels on."""
    return subject_for_kind(message.KIND, message.site_id)


def kind_of_subject(subject: str) -> str:
    """The message kind a subject carries (the inverse of `subject_for_kind`)."""
    parts = subject.split(".")
    if len(parts) < 4:
        raise ValueError(f"subject {subject!r} is not a fleet message subject")
    try:
        return _KINDS[".".join(parts[:2]), ".".join(parts[3:])]
    except KeyError:
        raise ValueError(f"subject {subject!r} carries no known message kind") from None


def site_of_subject(subject: str) -> str:
    """The site token of a fleet subject."""
    parts = subject.split(".")
    if len(parts) < 4:
        raise ValueError(f"subject {subject!r} is not a fleet message subject")
    return _checked_site(parts[2])


def site_events(site_id: str) -> str:
    """Everything one site publishes."""
    return f"{SITE_ROOT}.{_checked_site(site_id)}.>"


def all_site_events() -> str:
    """Everything any site publishes."""
    return f"{SITE_ROOT}.*.>"


def all_sites_of_kind(kind: str) -> str:
    """One kind of site message from every site (e.g. all frame scores)."""
    root, suffix = _ROUTES[kind]
    return f"{root}.*.{suffix}"


def site_commands(site_id: str) -> str:
    """Every command addressed to one site."""
    return f"{COMMAND_ROOT}.{_checked_site(site_id)}.>"


def all_commands() -> str:
    """Every command to any site."""
    return f"{COMMAND_ROOT}.>"


def dead_letter(consumer: str) -> str:
    """Where a consumer puts messages it could not accept."""
    if not _TOKEN.match(consumer):
        raise ValueError(f"consumer name {consumer!r} is not a valid subject token")
    return f"{DEAD_LETTER_ROOT}.{consumer}"


def all_dead_letters() -> str:
    """Every dead-lettered message."""
    return f"{DEAD_LETTER_ROOT}.>"

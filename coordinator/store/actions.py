"""Operator actions on the store: re-prioritise or mark a target, save or reject it, request,
re-prioritise or cancel a follow-up.

A follow-up action that concerns a site stores its command (`FollowUpRequest`,
`FollowUpCancel`, `FollowUpReprioritise`) in the outbox in the same transaction as the change,
and the dispatcher publishes it (`coordinator.scheduling.outbox`): it reaches the site even if
the coordinator restarts in between.
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, select, update

from coordinator.followup_states import ACTIVE_PHASES, FollowUpPhase
from coordinator.scheduling import outbox
from coordinator.scheduling.dispatcher import record_request, site_states
from coordinator.scheduling.planner import default_constraints, plan_of, site_options, why_not
from coordinator.settings import CoordinatorSettings
from coordinator.store.tables import OPERATOR_PREFIX, FollowUp, Target, TargetStatus, table_of
from protos import ExposurePlan, FollowUpReprioritise

log = logging.getLogger(__name__)

followups = table_of(FollowUp)
targets = table_of(Target)
CANCELLED_BY_OPERATOR = "cancelled by operator"
REJECTED_BY_OPERATOR = "target rejected by operator"


class UnknownTarget(LookupError):
    """The target named does not exist."""


class UnknownSite(LookupError):
    """The site named has no known location."""


def set_priority(conn: Connection, target_id: int, priority: int) -> bool:
    """Give a target a new follow-up priority (1 is the most urgent); False if unknown."""
    result = conn.execute(
        update(targets).where(targets.c.target_id == target_id).values(priority=priority)
    )
    return result.rowcount == 1


def mark_target(conn: Connection, target_id: int, mark: str | None) -> bool:
    """Mark a target (e.g. 'interesting', 'dismissed'; None clears); False if unknown."""
    result = conn.execute(update(targets).where(targets.c.target_id == target_id).values(mark=mark))
    return result.rowcount == 1


def _decide(
    conn: Connection, target_id: int, status: TargetStatus, user: str, now: datetime
) -> bool:
    result = conn.execute(
        update(targets)
        .where(targets.c.target_id == target_id)
        .values(status=status.value, promoted_by=f"{OPERATOR_PREFIX}{user}", promoted_at=now)
    )
    return result.rowcount == 1


def save_target(conn: Connection, target_id: int, user: str, now: datetime) -> bool:
    """An operator saves a target as a source (it is then followed up, and stays a source
    whatever is detected later); False if unknown."""
    return _decide(conn, target_id, TargetStatus.SOURCE, user, now)


def reject_target(conn: Connection, target_id: int, user: str, now: datetime) -> bool:
    """An operator rejects a target: it is never followed up again and its open follow-ups are
    cancelled at their sites; False if unknown."""
    if not _decide(conn, target_id, TargetStatus.REJECTED, user, now):
        return False
    active = conn.execute(
        select(followups.c.request_id).where(
            followups.c.target_id == target_id, followups.c.state.in_(list(ACTIVE_PHASES))
        )
    ).scalars()
    for request_id in list(active):
        cancel_followup(conn, request_id, now, reason=REJECTED_BY_OPERATOR)
    return True


def _is_active(request_id: str) -> ColumnElement[bool]:
    """The follow-up `request_id`, while it is active."""
    return and_(followups.c.request_id == request_id, followups.c.state.in_(list(ACTIVE_PHASES)))


def _active_followup_site(conn: Connection, request_id: str) -> str | None:
    """The site holding an active follow-up (None if it is unknown or no longer active); read
    FOR UPDATE where the database has it, so the change that follows sees the same state."""
    return conn.execute(
        select(followups.c.site_id).where(_is_active(request_id)).with_for_update()
    ).scalar_one_or_none()


def cancel_followup(
    conn: Connection, request_id: str, now: datetime, *, reason: str = CANCELLED_BY_OPERATOR
) -> bool:
    """Cancel an active follow-up: it goes to `cancelling` until its site answers (cancelled, or
    its final state if it had finished), is never re-planned, and a `FollowUpCancel` goes to
    its site; False if it is not active (unknown, finished, cancelling or cancelled)."""
    site_id = _active_followup_site(conn, request_id)
    if site_id is None:
        return False
    conn.execute(
        update(followups)
        .where(_is_active(request_id))
        .values(state=FollowUpPhase.CANCELLING.value, reason=reason, updated_at=now)
    )
    outbox.cancel_command(conn, site_id, request_id, reason, now)
    return True


def reprioritise_followup(conn: Connection, request_id: str, priority: int, now: datetime) -> bool:
    """Give an active follow-up a new priority (1 is the most urgent) and send it to its site
    (`FollowUpReprioritise`); False if it is not active."""
    site_id = _active_followup_site(conn, request_id)
    if site_id is None:
        return False
    conn.execute(
        update(followups).where(_is_active(request_id)).values(priority=priority, updated_at=now)
    )
    message = FollowUpReprioritise(
        message_id=outbox.command_id(conn, FollowUpReprioritise.KIND, site_id, request_id),
        site_id=site_id,
        created_at=now,
        request_id=request_id,
        priority=priority,
    )
    outbox.enqueue(conn, message, now)
    return True


def request_followup(
    conn: Connection,
    target_id: int,
    plan: ExposurePlan,
    priority: int,
    user: str,
    now: datetime,
    *,
    site_id: str | None = None,
    settings: CoordinatorSettings | None = None,
) -> str | None:
    """An operator's follow-up request for a target (any status but rejected), observed as
    `plan`, at `site_id` or the best site, planned now as the dispatcher plans (constraints and
    expected quality, with the explanation stored); returns its request id, or None if no site
    can observe it before the deadline (logged with each site's veto). `settings`: the
    coordinator's (None: the defaults). Raises `UnknownTarget` (or a rejected one) and
    `UnknownSite` with a one-line reason."""
    settings = settings or CoordinatorSettings()
    target = conn.execute(
        select(targets.c.ra_deg, targets.c.dec_deg, targets.c.status).where(
            targets.c.target_id == target_id
        )
    ).one_or_none()
    if target is None:
        raise UnknownTarget(f"no target {target_id}")
    if target.status == TargetStatus.REJECTED.value:
        raise UnknownTarget(f"target {target_id} was rejected")
    sites = site_states(conn, settings, now)
    if site_id is not None:
        sites = [s for s in sites if s.site_id == site_id]
        if not sites:
            raise UnknownSite(f"no site {site_id!r} with a known location")
    window = timedelta(hours=settings.followup_window_h)
    options = site_options(
        target.ra_deg, target.dec_deg, sites, default_constraints(settings), now, window
    )
    chosen = plan_of(options, settings.quality_persistence_h)
    if chosen is None:
        log.info("operator follow-up not possible target=%s why=%s", target_id, why_not(options))
        return None
    request = record_request(
        conn,
        target_id,
        chosen,
        now,
        window,
        exposure=plan,
        priority=priority,
        reason=f"requested by {user}",
    )
    return request.request_id

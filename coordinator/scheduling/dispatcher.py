"""Follow-up dispatch: decide which sources need observing, plan and record requests, retire
those that cannot succeed, and publish every command to the sites from the outbox.

Each round (1) retires active requests whose site went offline or bad (re-planned), that were
not accepted in time or passed their deadline (timed out), and stores a `FollowUpCancel` for
the site that holds each, so it never executes a request planned elsewhere; (2) plans every
source without an open, finished or cancelled request, avoiding sites that already failed it,
and stores its `FollowUpRequest`; (3) publishes what the outbox holds (these, and the operators'
cancels and re-prioritisations), `coordinator.scheduling.outbox`.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import Connection, Engine, func, or_, select, update

from coordinator.followup_states import ACTIVE_PHASES, OPEN_PHASES, FollowUpPhase
from coordinator.scheduling import outbox
from coordinator.scheduling.expected import site_qualities
from coordinator.scheduling.planner import Plan, best_plan, default_constraints
from coordinator.scheduling.sky import SiteState
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.store.tables import OPERATOR_PREFIX, FollowUp, Target, TargetStatus, table_of
from coordinator.summary import site_views
from coordinator.views import SiteStatus
from fleetbus.client import publish
from protos import ExposurePlan, FleetMessage, FollowUpRequest, SkyTarget, stable_message_id
from protos.base import utc_now

log = logging.getLogger(__name__)

followups = table_of(FollowUp)
targets = table_of(Target)
SETTLED_PHASES = OPEN_PHASES | {FollowUpPhase.DONE, FollowUpPhase.CANCELLED}
FAILED_PHASES = (FollowUpPhase.FAILED, FollowUpPhase.TIMED_OUT, FollowUpPhase.REPLANNED)
EXPOSURE = ExposurePlan(filter="r", exptime_s=120.0, count=3)
NOT_FOLLOWED_MARKS = ("dismissed", "artefact")
UNCONFIRMED_CANCEL = "cancelled; the site did not confirm in time"


def site_states(conn: Connection, settings: CoordinatorSettings, now: datetime) -> list[SiteState]:
    """Sites with a known location, with their health, queue (ours included) and quality."""
    views = {v.site_id: v for v in site_views(conn, settings, now)}
    qualities = site_qualities(conn, settings.quality_frames)
    ours: dict[str, int] = dict(
        conn.execute(
            select(followups.c.site_id, func.count())
            .where(followups.c.state.in_(list(ACTIVE_PHASES)))
            .group_by(followups.c.site_id)
        ).all()
    )
    return [
        SiteState(
            site_id=r["site_id"],
            lat_deg=r["lat_deg"],
            lon_deg=r["lon_deg"],
            height_m=r["height_m"] or 0.0,
            horizon_limit_deg=r["horizon_limit_deg"] or 0.0,
            online=views[r["site_id"]].status is SiteStatus.ONLINE,
            queue_depth=(r["queue_depth"] or 0) + int(ours.get(r["site_id"], 0)),
            quality=qualities[r["site_id"]],
            sky_offset_s=settings.sky_clock_offsets_s.get(r["site_id"], 0.0),
        )
        for r in reads.site_records(conn)
        if r["lat_deg"] is not None and r["lon_deg"] is not None
    ]


def retire(
    conn: Connection,
    request_id: str,
    site_id: str,
    phase: FollowUpPhase,
    reason: str,
    now: datetime,
) -> None:
    """Move a request to a final phase of the coordinator's own and withdraw it from its site."""
    conn.execute(
        update(followups)
        .where(followups.c.request_id == request_id)
        .values(state=phase.value, reason=reason, updated_at=now)
    )
    outbox.cancel_command(conn, site_id, request_id, f"{phase.value}: {reason}", now)
    log.info(
        "follow-up retired request=%s site=%s state=%s reason=%s",
        request_id,
        site_id,
        phase,
        reason,
    )


def retire_followups(conn: Connection, settings: CoordinatorSettings, now: datetime) -> int:
    """Retire active requests that cannot succeed any more; returns how many."""
    status = {v.site_id: v.status for v in site_views(conn, settings, now)}
    active = conn.execute(select(followups).where(followups.c.state.in_(list(ACTIVE_PHASES)))).all()
    retired = 0
    for f in active:
        site_status = status.get(f.site_id, SiteStatus.OFFLINE)
        if site_status is not SiteStatus.ONLINE:
            phase, reason = FollowUpPhase.REPLANNED, f"site went {site_status.value}"
        elif f.state == FollowUpPhase.SENT and now - f.sent_at > timedelta(
            seconds=settings.followup_ack_timeout_s
        ):
            phase, reason = FollowUpPhase.TIMED_OUT, "site did not accept in time"
        elif now > f.deadline:
            phase, reason = FollowUpPhase.TIMED_OUT, "deadline passed"
        else:
            continue
        retire(conn, f.request_id, f.site_id, phase, reason, now)
        retired += 1
    return retired + close_unconfirmed_cancels(conn, settings, now)


def close_unconfirmed_cancels(
    conn: Connection, settings: CoordinatorSettings, now: datetime
) -> int:
    """Close cancels a site has not answered within `followup_ack_timeout_s` (it is offline,
    or lost the request): cancelled, saying so; the site still gets the `FollowUpCancel` when
    it comes back, since the command stream keeps it. Returns how many."""
    timeout = timedelta(seconds=settings.followup_ack_timeout_s)
    result = conn.execute(
        update(followups)
        .where(
            followups.c.state == FollowUpPhase.CANCELLING.value,
            followups.c.updated_at < now - timeout,
        )
        .values(
            state=FollowUpPhase.CANCELLED.value,
            reason=UNCONFIRMED_CANCEL,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def targets_to_follow(
    conn: Connection, settings: CoordinatorSettings
) -> list[tuple[int, str, float, float]]:
    """(target_id, name, ra, dec) of sources (confident ones, or saved by an operator),
    unmarked and without a settled request, most urgent first."""
    settled = select(followups.c.target_id).where(followups.c.state.in_(list(SETTLED_PHASES)))
    rows = conn.execute(
        select(targets.c.target_id, targets.c.name, targets.c.ra_deg, targets.c.dec_deg)
        .where(
            targets.c.status == TargetStatus.SOURCE.value,
            or_(
                targets.c.confidence >= settings.followup_min_confidence,
                targets.c.promoted_by.startswith(OPERATOR_PREFIX),
            ),
            or_(targets.c.mark.is_(None), targets.c.mark.not_in(NOT_FOLLOWED_MARKS)),
            targets.c.target_id.not_in(settled),
        )
        .order_by(targets.c.priority, targets.c.confidence.desc())
    ).all()
    return [(r.target_id, r.name, r.ra_deg, r.dec_deg) for r in rows]


def failed_sites(conn: Connection, target_id: int) -> set[str]:
    """Sites whose earlier requests for this target failed, timed out or were re-planned."""
    return set(
        conn.execute(
            select(followups.c.site_id).where(
                followups.c.target_id == target_id, followups.c.state.in_(list(FAILED_PHASES))
            )
        ).scalars()
    )


def record_request(
    conn: Connection,
    target_id: int,
    plan: Plan,
    now: datetime,
    window: timedelta,
    *,
    exposure: ExposurePlan = EXPOSURE,
    priority: int | None = None,
    reason: str | None = None,
) -> FollowUpRequest:
    """Store a new request in state `sent`, with its plan and explanation, and its command in
    the outbox; returns the command. The priority is the target's unless given."""
    target = conn.execute(select(targets).where(targets.c.target_id == target_id)).one()
    attempt = (
        conn.execute(select(func.count()).where(followups.c.target_id == target_id)).scalar_one()
        + 1
    )
    request_id = f"t{target_id}-{attempt}"
    not_before = plan.start if plan.start > now else None
    request = FollowUpRequest(
        message_id=stable_message_id(FollowUpRequest.KIND, plan.site_id, request_id),
        site_id=plan.site_id,
        created_at=now,
        request_id=request_id,
        target=SkyTarget(name=target.name, ra_deg=target.ra_deg, dec_deg=target.dec_deg),
        plan=exposure,
        not_before=not_before,
        deadline=now + window,
        priority=target.priority if priority is None else priority,
        reason=reason or f"score {plan.score:.2f}",
    )
    conn.execute(
        followups.insert().values(
            request_id=request_id,
            target_id=target_id,
            site_id=plan.site_id,
            state=FollowUpPhase.SENT.value,
            priority=request.priority,
            score=plan.score,
            not_before=not_before,
            deadline=request.deadline,
            sent_at=now,
            updated_at=now,
            reason=request.reason,
            plan=exposure.model_dump(mode="json"),
            explanation=plan.explanation,
            exposures_done=0,
            exposures_total=exposure.count,
        )
    )
    outbox.enqueue(conn, request, now)
    return request


def plan_round(
    engine: Engine, settings: CoordinatorSettings, now: datetime
) -> list[FollowUpRequest]:
    """One scheduling round; returns the requests planned (stored, with their commands in the
    outbox)."""
    window = timedelta(hours=settings.followup_window_h)
    with engine.begin() as conn:
        retire_followups(conn, settings, now)
    with engine.connect() as conn:
        sites = site_states(conn, settings, now)
        wanted = [(t, failed_sites(conn, t[0])) for t in targets_to_follow(conn, settings)]
    constraints = default_constraints(settings)
    plans: list[tuple[int, Plan]] = []
    for (target_id, name, ra, dec), excluded in wanted:
        allowed = [s for s in sites if s.site_id not in excluded]
        plan = best_plan(ra, dec, allowed, constraints, now, window, settings.quality_persistence_h)
        if plan is None:
            log.info("follow-up not possible now target=%s", name)
            continue
        plans.append((target_id, plan))
    with engine.begin() as conn:
        return [record_request(conn, t, plan, now, window) for t, plan in plans]


class Dispatcher:
    """Runs scheduling rounds and publishes the outbox until stopped."""

    def __init__(
        self,
        js: JetStreamContext,
        engine: Engine,
        settings: CoordinatorSettings,
        executor: Executor,
    ) -> None:
        self.js = js
        self.engine = engine
        self.settings = settings
        self.executor = executor

    async def _in_executor(self, *call: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, *call)

    async def run_once(self) -> list[FleetMessage]:
        """Plan now, then send every command the outbox holds; returns those sent."""
        await self._in_executor(plan_round, self.engine, self.settings, utc_now())
        return await self.send_outbox()

    async def send_outbox(self) -> list[FleetMessage]:
        """Publish the commands not yet sent and mark each sent once the bus has it; one the bus
        refuses now (and those after it) wait for the next round."""
        pending: list[FleetMessage] = await self._in_executor(outbox.unsent_commands, self.engine)
        sent: list[FleetMessage] = []
        for message in pending:
            try:
                await publish(self.js, message)
            except Exception as error:
                log.warning(
                    "command not sent kind=%s site=%s id=%s error=%r; retried next round",
                    message.KIND,
                    message.site_id,
                    message.message_id,
                    error,
                )
                break
            sent.append(message)
            log.info("command sent kind=%s site=%s", message.KIND, message.site_id)
        await self._in_executor(
            outbox.mark_sent, self.engine, [m.message_id for m in sent], utc_now()
        )
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        """A round every `plan_interval_s` (a failed round is logged and retried)."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("follow-up round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.plan_interval_s)

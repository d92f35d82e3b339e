"""Follow-up dispatch: decide which targets need observing, send requests, track and re-plan.

Each round (1) retires active requests whose site went offline or bad (re-planned), that were
not accepted in time or passed their deadline (timed out); (2) plans every confident target
without an active, finished or cancelled request, avoiding sites that already failed it; and
(3) publishes the new `FollowUpRequest`s on the chosen sites' command subjects.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from datetime import datetime, timedelta

from nats.js import JetStreamContext
from sqlalchemy import Connection, Engine, func, or_, select, update

from coordinator.followup_states import ACTIVE_PHASES, FollowUpPhase
from coordinator.scheduling.planner import Plan, best_plan, default_constraints
from coordinator.scheduling.sky import SiteState
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.store.tables import FollowUp, Target, table_of
from coordinator.summary import site_views
from coordinator.views import SiteStatus
from fleetbus.client import publish
from protos import ExposurePlan, FollowUpRequest, SkyTarget, stable_message_id
from protos.base import utc_now

log = logging.getLogger(__name__)

followups = table_of(FollowUp)
targets = table_of(Target)
SETTLED_PHASES = ACTIVE_PHASES | {FollowUpPhase.DONE, FollowUpPhase.CANCELLED}
FAILED_PHASES = (FollowUpPhase.FAILED, FollowUpPhase.TIMED_OUT, FollowUpPhase.REPLANNED)
EXPOSURE = ExposurePlan(filter="r", exptime_s=120.0, count=3)
NOT_FOLLOWED_MARKS = ("dismissed", "artefact")


def site_states(conn: Connection, settings: CoordinatorSettings, now: datetime) -> list[SiteState]:
    """Sites with a known location, with their health and queue (ours included)."""
    views = {v.site_id: v for v in site_views(conn, settings, now)}
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
        )
        for r in reads.site_records(conn)
        if r["lat_deg"] is not None and r["lon_deg"] is not None
    ]


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
        conn.execute(
            update(followups)
            .where(followups.c.request_id == f.request_id)
            .values(state=phase.value, reason=reason, updated_at=now)
        )
        log.info(
            "follow-up retired request=%s site=%s state=%s reason=%s",
            f.request_id,
            f.site_id,
            phase,
            reason,
        )
        retired += 1
    return retired


def targets_to_follow(
    conn: Connection, settings: CoordinatorSettings
) -> list[tuple[int, str, float, float]]:
    """(target_id, name, ra, dec) of confident, fixed, unmarked targets without a settled
    request, most urgent first."""
    settled = select(followups.c.target_id).where(followups.c.state.in_(list(SETTLED_PHASES)))
    rows = conn.execute(
        select(targets.c.target_id, targets.c.name, targets.c.ra_deg, targets.c.dec_deg)
        .where(
            targets.c.confidence >= settings.followup_min_confidence,
            targets.c.moving.is_(False),
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
    name: str,
    ra_deg: float,
    dec_deg: float,
    plan: Plan,
    now: datetime,
    window: timedelta,
) -> FollowUpRequest:
    """Store a new request in state `sent` and return the message to publish."""
    attempt = (
        conn.execute(select(func.count()).where(followups.c.target_id == target_id)).scalar_one()
        + 1
    )
    priority = conn.execute(
        select(targets.c.priority).where(targets.c.target_id == target_id)
    ).scalar_one()
    request_id = f"t{target_id}-{attempt}"
    not_before = plan.start if plan.start > now else None
    request = FollowUpRequest(
        message_id=stable_message_id(FollowUpRequest.KIND, plan.site_id, request_id),
        site_id=plan.site_id,
        request_id=request_id,
        target=SkyTarget(name=name, ra_deg=ra_deg, dec_deg=dec_deg),
        plan=EXPOSURE,
        not_before=not_before,
        deadline=now + window,
        priority=priority,
        reason=f"score {plan.score:.2f}",
    )
    conn.execute(
        followups.insert().values(
            request_id=request_id,
            target_id=target_id,
            site_id=plan.site_id,
            state=FollowUpPhase.SENT.value,
            priority=priority,
            score=plan.score,
            not_before=not_before,
            deadline=request.deadline,
            sent_at=now,
            updated_at=now,
            reason=request.reason,
        )
    )
    return request


def plan_round(
    engine: Engine, settings: CoordinatorSettings, now: datetime
) -> list[FollowUpRequest]:
    """One scheduling round; returns the requests to send (already recorded as sent)."""
    window = timedelta(hours=settings.followup_window_h)
    with engine.begin() as conn:
        retire_followups(conn, settings, now)
    with engine.connect() as conn:
        sites = site_states(conn, settings, now)
        wanted = [(t, failed_sites(conn, t[0])) for t in targets_to_follow(conn, settings)]
    constraints = default_constraints(settings)
    plans = []
    for (target_id, name, ra, dec), excluded in wanted:
        plan = best_plan(
            ra, dec, [s for s in sites if s.site_id not in excluded], constraints, now, window
        )
        if plan is None:
            log.info("follow-up not possible now target=%s", name)
            continue
        plans.append((target_id, name, ra, dec, plan))
    requests = []
    with engine.begin() as conn:
        for target_id, name, ra, dec, plan in plans:
            requests.append(record_request(conn, target_id, name, ra, dec, plan, now, window))
    return requests


class Dispatcher:
    """Runs scheduling rounds and publishes their requests until stopped."""

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

    async def run_once(self) -> list[FollowUpRequest]:
        """Plan now and send what was planned."""
        loop = asyncio.get_running_loop()
        requests = await loop.run_in_executor(
            self.executor, plan_round, self.engine, self.settings, utc_now()
        )
        for request in requests:
            await publish(self.js, request)
            log.info(
                "follow-up sent request=%s target=%s site=%s",
                request.request_id,
                request.target.name,
                request.site_id,
            )
        return requests

    async def run(self, stop: asyncio.Event) -> None:
        """A round every `plan_interval_s` (a failed round is logged and retried)."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("follow-up round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.plan_interval_s)

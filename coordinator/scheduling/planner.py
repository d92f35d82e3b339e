"""The planner: for one target, the best site and time among those the constraints allow."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from coordinator.scheduling.constraints import (
    AirmassConstraint,
    AltitudeConstraint,
    AtNightConstraint,
    Constraint,
    MoonSeparationConstraint,
    QueueConstraint,
    SiteOnlineConstraint,
)
from coordinator.scheduling.scorer import combined_score, urgency
from coordinator.scheduling.sky import SiteState, sky_at_site, time_grid
from coordinator.settings import CoordinatorSettings

STEP = timedelta(minutes=15)
URGENCY_HALF_LIFE = timedelta(hours=6)


@dataclass(frozen=True)
class Plan:
    """Where and when to observe a target, and how good that choice scored."""

    site_id: str
    start: datetime
    score: float


def default_constraints(settings: CoordinatorSettings) -> list[Constraint]:
    """The fleet's constraints: above the horizon and under the airmass limit, at night, away
    from the Moon, at an online site with good weather and room in its queue."""
    return [
        AltitudeConstraint(),
        AirmassConstraint(settings.max_airmass),
        AtNightConstraint(-12.0),
        MoonSeparationConstraint(settings.min_moon_separation_deg),
        SiteOnlineConstraint(),
        QueueConstraint(settings.max_site_queue),
    ]


def best_plan(
    ra_deg: float,
    dec_deg: float,
    sites: Sequence[SiteState],
    constraints: Sequence[Constraint],
    now: datetime,
    window: timedelta,
) -> Plan | None:
    """The highest-scoring (site, time) within `window` from `now`, or None if nowhere works."""
    times = time_grid(now, window, STEP)
    best: Plan | None = None
    for site in sites:
        sky = sky_at_site(site, ra_deg, dec_deg, times)
        score = combined_score(constraints, sky) * urgency(sky, URGENCY_HALF_LIFE)
        index = int(np.argmax(score))
        if score[index] > 0 and (best is None or score[index] > best.score):
            best = Plan(site_id=site.site_id, start=times[index], score=float(score[index]))
    return best

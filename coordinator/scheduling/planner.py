"""The planner: for one target, the best site and time among those the constraints allow, and
why (stored with the follow-up as its `explanation`, which the console shows).

The explanation names the constraints met at the chosen time, the deciding constraint (against
the runner-up site: the factor in which the chosen site leads it most; with no other site able
to observe: the constraint that vetoed the others), each site's score, and the expected seeing,
transparency and S/N at the chosen site and time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from astropy.time import Time

from coordinator.scheduling.constraints import (
    AirmassConstraint,
    AltitudeConstraint,
    AtNightConstraint,
    Constraint,
    ExpectedQualityConstraint,
    MoonSeparationConstraint,
    QueueConstraint,
    SiteOnlineConstraint,
)
from coordinator.scheduling.expected import expected_quality
from coordinator.scheduling.scorer import ScoredSky, scored_sky
from coordinator.scheduling.sky import SiteState, SkyAtSite, sky_at_site, time_grid
from coordinator.settings import CoordinatorSettings

STEP = timedelta(minutes=15)
URGENCY_HALF_LIFE = timedelta(hours=6)


@dataclass(frozen=True)
class SiteOption:
    """One site's best time for a target (None if every time is vetoed) and how it scored."""

    site_id: str
    sky: SkyAtSite
    scored: ScoredSky
    index: int | None

    @property
    def score(self) -> float:
        return 0.0 if self.index is None else float(self.scored.total[self.index])

    def summary(self, persistence_h: float) -> dict[str, Any]:
        """The site's line in the explanation."""
        if self.index is None:
            return {"site_id": self.site_id, "score": 0.0, "vetoed_by": self.scored.vetoed_by()}
        i = self.index
        expected = expected_quality(
            self.sky.site.quality, self.sky.hours_ahead, self.sky.airmass, persistence_h
        ).at(i)
        return {
            "site_id": self.site_id,
            "score": round(self.score, 4),
            "start": self.sky.times[i].isoformat(),
            "factors": self.scored.at(i),
            "altitude_deg": round(float(self.sky.target_alt_deg[i]), 2),
            "airmass": round(float(self.sky.airmass[i]), 3),
            "expected": expected,
        }


@dataclass(frozen=True)
class Plan:
    """Where and when to observe a target, how good that choice scored, and why."""

    site_id: str
    start: datetime
    score: float
    explanation: dict[str, Any]


def default_constraints(settings: CoordinatorSettings) -> list[Constraint]:
    """The fleet's constraints, cheapest first: an online site with good weather and room in its
    queue, the target above the horizon and under the airmass limit, at night, away from the
    Moon, and the expected S/N from the site's recent quality and conditions."""
    return [
        SiteOnlineConstraint(),
        QueueConstraint(settings.max_site_queue),
        AltitudeConstraint(),
        AtNightConstraint(-12.0),
        AirmassConstraint(settings.max_airmass),
        MoonSeparationConstraint(settings.min_moon_separation_deg),
        ExpectedQualityConstraint(settings.quality_persistence_h),
    ]


def site_options(
    ra_deg: float,
    dec_deg: float,
    sites: Sequence[SiteState],
    constraints: Sequence[Constraint],
    now: datetime,
    window: timedelta,
) -> list[SiteOption]:
    """Every site's best time for the target within `window` from `now`, best site first."""
    times = time_grid(now, window, STEP)
    obstime = Time(times)
    options = []
    for site in sites:
        sky = sky_at_site(site, ra_deg, dec_deg, times, obstime)
        scored = scored_sky(constraints, sky, URGENCY_HALF_LIFE)
        index = int(np.argmax(scored.total))
        options.append(
            SiteOption(site.site_id, sky, scored, index if scored.total[index] > 0 else None)
        )
    return sorted(options, key=lambda o: -o.score)


def deciding_constraint(options: Sequence[SiteOption]) -> dict[str, str]:
    """What decided the choice of `options[0]` (see the module's docstring)."""
    best = options[0]
    assert best.index is not None
    others = options[1:]
    if others and others[0].index is not None:
        runner = others[0]
        assert runner.index is not None
        mine, theirs = best.scored.at(best.index), runner.scored.at(runner.index)
        lead = {n: np.log(mine[n] / theirs[n]) for n in mine if n in theirs and theirs[n] > 0}
        name = max(lead, key=lambda n: lead[n])
        if lead[name] <= 0.0:
            return {"constraint": "none", "detail": f"tied with {runner.site_id}"}
        return {
            "constraint": name,
            "detail": f"{name} {mine[name]:.3g} at {best.site_id} vs {theirs[name]:.3g} at "
            f"{runner.site_id}",
        }
    if others:
        name = others[0].scored.vetoed_by() or "score"
        return {"constraint": name, "detail": f"{name} vetoed {others[0].site_id}"}
    vetoing = best.scored.vetoed_by()
    if vetoing is not None:
        return {"constraint": vetoing, "detail": f"{vetoing} chose the time at {best.site_id}"}
    factors = best.scored.at(best.index)
    name = min(factors, key=lambda n: factors[n])
    return {"constraint": name, "detail": f"{name} {factors[name]:.3g}, the lowest factor"}


def why_not(options: Sequence[SiteOption]) -> str:
    """Why no site can observe the target, one clause per site."""
    if not options:
        return "no site with a known location"
    return "; ".join(f"{o.site_id}: {o.scored.vetoed_by()} vetoes every time" for o in options)


def best_plan(
    ra_deg: float,
    dec_deg: float,
    sites: Sequence[SiteState],
    constraints: Sequence[Constraint],
    now: datetime,
    window: timedelta,
    persistence_h: float,
) -> Plan | None:
    """The highest-scoring (site, time) within `window` from `now` with its explanation, or
    None if nowhere works."""
    options = site_options(ra_deg, dec_deg, sites, constraints, now, window)
    return plan_of(options, persistence_h)


def plan_of(options: Sequence[SiteOption], persistence_h: float) -> Plan | None:
    """The plan for the best of `options` (best first), or None if none can observe."""
    if not options or options[0].index is None:
        return None
    best = options[0]
    assert best.index is not None
    chosen = best.summary(persistence_h)
    explanation = {
        "site_id": best.site_id,
        "start": chosen["start"],
        "score": chosen["score"],
        "constraints_met": [n for n, v in chosen["factors"].items() if v > 0],
        "deciding": deciding_constraint(options),
        "expected": {**chosen["expected"], "airmass": chosen["airmass"]},
        "sites": [o.summary(persistence_h) for o in options],
    }
    return Plan(best.site_id, best.sky.times[best.index], best.score, explanation)

"""Scoring one site's times for a target: every constraint's score at each time, their product
with a preference for sooner over later, and which constraint vetoed a site that cannot."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from coordinator.scheduling.constraints import Constraint
from coordinator.scheduling.sky import SkyAtSite

URGENCY = "urgency"


@dataclass(frozen=True)
class ScoredSky:
    """Each constraint's score at each time (in the order evaluated, by name) and their product
    with urgency. Constraints after the one that vetoed every time are not evaluated."""

    factors: dict[str, np.ndarray]
    total: np.ndarray

    def vetoed_by(self) -> str | None:
        """The constraint that vetoes the most times (the first such), or None if none vetoes."""
        vetoes = {name: int(np.sum(values <= 0.0)) for name, values in self.factors.items()}
        name = max(vetoes, key=lambda n: vetoes[n], default=None)
        return name if name is not None and vetoes[name] > 0 else None

    def at(self, index: int) -> dict[str, float]:
        """Every factor's value at one time."""
        return {name: round(float(v[index]), 4) for name, v in self.factors.items()}


def urgency(sky: SkyAtSite, half_life: timedelta) -> np.ndarray:
    """Weight that halves every `half_life` after the first time: sooner is better."""
    return np.power(0.5, sky.hours_ahead * 3600.0 / half_life.total_seconds())


def scored_sky(
    constraints: Sequence[Constraint], sky: SkyAtSite, half_life: timedelta
) -> ScoredSky:
    """Score every time of the sky; stops early once every time is vetoed (put the cheap
    constraints first: a site that is offline costs no sky computation)."""
    factors: dict[str, np.ndarray] = {}
    total = np.ones(len(sky.times))
    for constraint in constraints:
        factors[constraint.name] = constraint.score(sky)
        total = total * factors[constraint.name]
        if not np.any(total > 0):
            return ScoredSky(factors, total)
    factors[URGENCY] = urgency(sky, half_life)
    return ScoredSky(factors, total * factors[URGENCY])

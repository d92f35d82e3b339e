"""Combining constraints into one score per time, and preferring sooner over later."""

from collections.abc import Sequence
from datetime import timedelta

import numpy as np

from coordinator.scheduling.constraints import Constraint
from coordinator.scheduling.sky import SkyAtSite


def combined_score(constraints: Sequence[Constraint], sky: SkyAtSite) -> np.ndarray:
    """Product of every constraint's score at each time (0 where any constraint vetoes)."""
    score = np.ones(len(sky.times))
    for constraint in constraints:
        score *= constraint.score(sky)
    return score


def urgency(sky: SkyAtSite, half_life: timedelta) -> np.ndarray:
    """Weight that halves every `half_life` after the first time: sooner is better."""
    delays_s = np.array([(t - sky.times[0]).total_seconds() for t in sky.times])
    return np.power(0.5, delays_s / half_life.total_seconds())

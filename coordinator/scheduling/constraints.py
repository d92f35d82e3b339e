"""Observing constraints, each a small class with one job (in the style of astroplan).

A constraint scores every time of a `SkyAtSite` between 0 (impossible) and 1 (ideal); the
scorer multiplies them, so any constraint can veto a time.
"""

from typing import Protocol

import numpy as np

from coordinator.scheduling.sky import SkyAtSite


class Constraint(Protocol):
    """Anything that scores the times of a `SkyAtSite` in [0, 1]."""

    def score(self, sky: SkyAtSite) -> np.ndarray: ...


class AltitudeConstraint:
    """The target must be above the site's horizon limit; higher is better."""

    def score(self, sky: SkyAtSite) -> np.ndarray:
        limit = sky.site.horizon_limit_deg
        above = sky.target_alt_deg >= limit
        height = (sky.target_alt_deg - limit) / max(90.0 - limit, 1e-6)
        return np.where(above, 0.5 + 0.5 * np.clip(height, 0.0, 1.0), 0.0)


class AirmassConstraint:
    """The airmass must not exceed `max_airmass`."""

    def __init__(self, max_airmass: float) -> None:
        self.max_airmass = max_airmass

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.airmass <= self.max_airmass).astype(float)


class AtNightConstraint:
    """The Sun must be below `max_solar_altitude_deg` (-12: nautical twilight is over)."""

    def __init__(self, max_solar_altitude_deg: float = -12.0) -> None:
        self.max_solar_altitude_deg = max_solar_altitude_deg

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.sun_alt_deg <= self.max_solar_altitude_deg).astype(float)


class MoonSeparationConstraint:
    """The target must be at least `min_deg` from the Moon."""

    def __init__(self, min_deg: float) -> None:
        self.min_deg = min_deg

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.moon_separation_deg >= self.min_deg).astype(float)


class SiteOnlineConstraint:
    """The site must be online with good enough weather (not offline, not flagged weather)."""

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return np.full(len(sky.times), 1.0 if sky.site.online else 0.0)


class QueueConstraint:
    """A site with a long queue is less attractive, and one with `max_queue` or more is full."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue

    def score(self, sky: SkyAtSite) -> np.ndarray:
        free = 1.0 - min(sky.site.queue_depth, self.max_queue) / self.max_queue
        return np.full(len(sky.times), free)

"""Observing constraints, each a small class with one job and a `name` the console shows.

A constraint scores every time of a `SkyAtSite`: 0 vetoes it, 1 allows it; the scorer
multiplies them, so any constraint can veto a time.

Night is astroplan's `AtNightConstraint`, evaluated with the site's `Observer`, whose cache
holds the Sun for the round's time grid. Altitude, airmass and the Moon's distance follow
astroplan's `AltitudeConstraint`, `AirmassConstraint` and `MoonSeparationConstraint` (a test
checks the altitude verdicts agree at every time) but read the altitude and Moon distance the
sky computes once per target (`sky.py`; the expected quality needs the airmass anyway):
measured on a 24 h grid of 15 min, per target and site, astroplan's moon constraint took
290 ms (it computes the Moon's ephemeris for every target) and its altitude constraint 47 ms,
against about 1 ms for the sky here; and astroplan's altitude cache keys a target by its right
ascension alone, so two targets at one RA in a round would share an altitude.
The site's own state (online, queue) and the expected quality are ours: astroplan has none.
"""

from typing import ClassVar, Protocol

import astroplan
import astropy.units as u
import numpy as np

from coordinator.scheduling.expected import expected_quality
from coordinator.scheduling.sky import SkyAtSite


class Constraint(Protocol):
    """Anything that scores the times of a `SkyAtSite` (0 vetoes a time)."""

    name: ClassVar[str]

    def score(self, sky: SkyAtSite) -> np.ndarray: ...


class AltitudeConstraint:
    """The target must be at or above the site's horizon limit."""

    name: ClassVar[str] = "altitude"

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.target_alt_deg >= sky.site.horizon_limit_deg).astype(float)


class AirmassConstraint:
    """The airmass (sec z) must not exceed `max_airmass`."""

    name: ClassVar[str] = "airmass"

    def __init__(self, max_airmass: float) -> None:
        self.max_airmass = max_airmass

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.airmass <= self.max_airmass).astype(float)


class AtNightConstraint:
    """The Sun must be at or below `max_solar_altitude_deg` (-12: nautical twilight is over)."""

    name: ClassVar[str] = "at_night"

    def __init__(self, max_solar_altitude_deg: float = -12.0) -> None:
        self.night = astroplan.AtNightConstraint(max_solar_altitude=max_solar_altitude_deg * u.deg)

    def score(self, sky: SkyAtSite) -> np.ndarray:
        verdict = self.night(sky.site.observer, sky.target, times=sky.obstime)
        return np.asarray(verdict, dtype=float).ravel()


class MoonSeparationConstraint:
    """The target must be at least `min_deg` from the Moon."""

    name: ClassVar[str] = "moon_separation"

    def __init__(self, min_deg: float) -> None:
        self.min_deg = min_deg

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return (sky.moon_separation_deg >= self.min_deg).astype(float)


class SiteOnlineConstraint:
    """The site must be online with good enough weather (not offline, not flagged weather)."""

    name: ClassVar[str] = "site_online"

    def score(self, sky: SkyAtSite) -> np.ndarray:
        return np.full(len(sky.times), 1.0 if sky.site.online else 0.0)


class QueueConstraint:
    """A site with a long queue is less attractive, and one with `max_queue` or more is full."""

    name: ClassVar[str] = "queue"

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue

    def score(self, sky: SkyAtSite) -> np.ndarray:
        free = 1.0 - min(sky.site.queue_depth, self.max_queue) / self.max_queue
        return np.full(len(sky.times), free)


class ExpectedQualityConstraint:
    """The target's expected S/N at each time relative to a reference night
    (`coordinator.scheduling.expected`): 0 where the site is unsafe now, above 1 on a night
    better than the reference."""

    name: ClassVar[str] = "expected_quality"

    def __init__(self, persistence_h: float) -> None:
        self.persistence_h = persistence_h

    def score(self, sky: SkyAtSite) -> np.ndarray:
        quality = sky.site.quality
        return expected_quality(quality, sky.hours_ahead, sky.airmass, self.persistence_h).snr

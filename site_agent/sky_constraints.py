"""Whether a follow-up target can be observed from the site at a time: the site's horizon limit,
a dark sky (the Sun below astronomical twilight) and distance from the Moon.

Each constraint is one small check returning why it fails (or None); `why_not_observable`
combines them at one time and `observable_in_window` asks whether any time of a request's window
passes them all. Positions come from astropy's built-in ephemerides (nothing is downloaded).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import astropy.units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from protos import SiteLocation, SkyTarget

log = logging.getLogger(__name__)

NAUTICAL_TWILIGHT_DEG = -12.0
"""The Sun must be below this altitude for a follow-up: the sky is dark enough for faint
targets from nautical twilight's end (-12°) on."""
MIN_MOON_SEPARATION_DEG = 20.0
"""A target closer to the Moon than this sits in its scattered light."""
WINDOW_STEP = timedelta(minutes=10)
"""How finely a request's window is sampled when asking whether any of it is observable."""
MAX_WINDOW_SAMPLES = 145
"""At most a day of samples at `WINDOW_STEP`: a longer window is sampled more coarsely."""


@dataclass(frozen=True)
class SiteSky:
    """Where the telescope is and what it will observe: its horizon limit, the darkest Sun and
    the nearest Moon it accepts."""

    location: SiteLocation
    horizon_limit_deg: float
    max_sun_altitude_deg: float = NAUTICAL_TWILIGHT_DEG
    min_moon_separation_deg: float = MIN_MOON_SEPARATION_DEG

    def _earth_location(self) -> EarthLocation:
        site = self.location
        return EarthLocation(
            lat=site.lat_deg * u.deg, lon=site.lon_deg * u.deg, height=site.height_m * u.m
        )

    def reasons(self, target: SkyTarget, times: list[datetime]) -> list[str | None]:
        """Per time: why the target cannot be observed then (None: it can)."""
        when = Time(times, scale="utc")
        frame = AltAz(obstime=when, location=self._earth_location())
        coord = SkyCoord(target.ra_deg * u.deg, target.dec_deg * u.deg, frame="icrs")
        target_altaz = coord.transform_to(frame)
        sun_alt = get_body("sun", when, self._earth_location()).transform_to(frame).alt.deg
        moon_altaz = get_body("moon", when, self._earth_location()).transform_to(frame)
        moon_sep = moon_altaz.separation(target_altaz).deg
        answers: list[str | None] = []
        for alt, sun, moon in zip(target_altaz.alt.deg, sun_alt, moon_sep, strict=True):
            if alt < self.horizon_limit_deg:
                answers.append(
                    f"target at altitude {alt:.1f} deg, below the horizon limit "
                    f"{self.horizon_limit_deg:.0f} deg"
                )
            elif sun > self.max_sun_altitude_deg:
                answers.append(
                    f"daylight: the Sun at {sun:.1f} deg, above {self.max_sun_altitude_deg:.0f} deg"
                )
            elif moon < self.min_moon_separation_deg:
                answers.append(
                    f"target {moon:.1f} deg from the Moon, nearer than "
                    f"{self.min_moon_separation_deg:.0f} deg"
                )
            else:
                answers.append(None)
        return answers

    def why_not_observable(self, target: SkyTarget, when: datetime) -> str | None:
        """Why the target cannot be observed at `when` (None: it can)."""
        return self.reasons(target, [when])[0]

    def why_never_observable(self, target: SkyTarget, start: datetime, end: datetime) -> str | None:
        """Why no time in [start, end] is observable (None: some time is), naming the reason
        found at the window's start."""
        span = max(end - start, timedelta(0))
        step = max(WINDOW_STEP, span / (MAX_WINDOW_SAMPLES - 1))
        times = [start + step * i for i in range(int(span / step) + 1)]
        if times[-1] < end:
            times.append(end)
        reasons = self.reasons(target, times)
        if any(reason is None for reason in reasons):
            return None
        return f"not observable in its whole window: {reasons[0]}"

"""Expected observing quality per site and hour, and the expected S/N it gives a target.

What a site measured lately (the seeing as the FWHM of its frames, their transparency, the
fraction it judged bad) and what its devices say now (cloud cover, the safety monitor's verdict)
persist for a while and then fade to a typical night: the weight of the present halves every
`persistence_h` hours ahead. A site that is unsafe now is unusable now and comes back as the
weight fades; one that has measured nothing is expected to have a typical night.

The expected S/N of a point source in a fixed exposure, background-limited, relative to a
reference night (seeing `REFERENCE_SEEING_ARCSEC` at the zenith, clear):
transparency * 10^(-0.4 k (X - 1)) * reference seeing / (seeing * X^0.6) * (1 - bad fraction)
* usable (the safety), where X is the airmass. (The noise grows with the image's area, so S/N
goes as 1 / FWHM; seeing grows as X^0.6 away from the zenith.)
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from coordinator.store.tables import FrameScoreRow, Site, table_of

REFERENCE_SEEING_ARCSEC = 2.0
"""The seeing of the reference night (expected S/N 1 at the zenith): a typical small-telescope
site's median, and the frames' FWHM the sky simulator draws around."""
TYPICAL_SEEING_ARCSEC = 2.0
"""The seeing expected where nothing was measured, or far ahead of the last measurement."""
TYPICAL_TRANSPARENCY = 0.8
"""The transparency expected where nothing was measured (a fair night, some thin cloud)."""
TYPICAL_BAD_FRACTION = 0.2
"""The fraction of frames expected bad where nothing was measured."""
EXTINCTION_MAG_PER_AIRMASS = 0.12
"""Atmospheric extinction in the r band at a good site (mag per airmass)."""
SEEING_AIRMASS_POWER = 0.6
"""Seeing grows as airmass^0.6 (Kolmogorov turbulence)."""


@dataclass(frozen=True)
class SiteQuality:
    """What a site measured lately and what its devices say now (None: unknown)."""

    seeing_arcsec: float | None = None
    transparency: float | None = None
    bad_fraction: float | None = None
    frames: int = 0
    cloud_cover_pct: float | None = None
    safe: bool | None = None


@dataclass(frozen=True)
class ExpectedQuality:
    """The expected seeing, transparency, bad fraction, usable fraction and relative S/N at each
    time of a grid (one value per time)."""

    seeing_arcsec: np.ndarray
    transparency: np.ndarray
    bad_fraction: np.ndarray
    usable: np.ndarray
    snr: np.ndarray

    def at(self, index: int) -> dict[str, float]:
        """The figures at one time, rounded for the console."""
        return {name: round(float(values[index]), 3) for name, values in asdict(self).items()}


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def transparency_now(quality: SiteQuality) -> float | None:
    """The frames' transparency, or less where the cloud sensor sees more cloud now."""
    clear = None if quality.cloud_cover_pct is None else 1.0 - quality.cloud_cover_pct / 100.0
    known = [v for v in (quality.transparency, clear) if v is not None]
    return min(known) if known else None


def expected_quality(
    quality: SiteQuality, hours_ahead: np.ndarray, airmass: np.ndarray, persistence_h: float
) -> ExpectedQuality:
    """The site's expected quality at each time (hours ahead of now, target airmass)."""
    present = np.power(0.5, hours_ahead / persistence_h)

    def fade(now: float | None, typical: float) -> np.ndarray:
        return (
            np.full(len(hours_ahead), typical)
            if now is None
            else present * now + (1.0 - present) * typical
        )

    seeing = fade(quality.seeing_arcsec, TYPICAL_SEEING_ARCSEC)
    transparency = fade(transparency_now(quality), TYPICAL_TRANSPARENCY)
    bad = fade(quality.bad_fraction, TYPICAL_BAD_FRACTION)
    usable = 1.0 - present if quality.safe is False else np.ones(len(hours_ahead))
    finite = np.where(np.isfinite(airmass), airmass, 1.0)
    extinction = np.power(10.0, -0.4 * EXTINCTION_MAG_PER_AIRMASS * (finite - 1.0))
    seeing_at_target = seeing * np.power(finite, SEEING_AIRMASS_POWER)
    snr = (
        transparency
        * extinction
        * (REFERENCE_SEEING_ARCSEC / seeing_at_target)
        * (1.0 - bad)
        * usable
    )
    return ExpectedQuality(seeing_at_target, transparency * extinction, bad, usable, snr)


def site_qualities(conn: Connection, frames: int) -> dict[str, SiteQuality]:
    """Every known site's quality from its latest `frames` scored frames and its conditions."""
    scores = table_of(FrameScoreRow)
    sites = table_of(Site)
    qualities: dict[str, SiteQuality] = {}
    for site_id, conditions in conn.execute(select(sites.c.site_id, sites.c.conditions)).all():
        recent = conn.execute(
            select(scores.c.fwhm_arcsec, scores.c.transparency, scores.c.label)
            .where(scores.c.site_id == site_id)
            .order_by(scores.c.scored_at.desc())
            .limit(frames)
        ).all()
        device: dict[str, Any] = conditions or {}
        qualities[site_id] = SiteQuality(
            seeing_arcsec=_median([r.fwhm_arcsec for r in recent]) or device.get("seeing_arcsec"),
            transparency=_median([r.transparency for r in recent]),
            bad_fraction=sum(r.label == "bad" for r in recent) / len(recent) if recent else None,
            frames=len(recent),
            cloud_cover_pct=device.get("cloud_cover_pct"),
            safe=device.get("safe"),
        )
    return qualities

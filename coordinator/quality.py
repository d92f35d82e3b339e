"""Fleet quality: a site's health from its heartbeats and recent frames, and quality over time.

Pure functions over plain values; the store supplies the numbers.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from coordinator.views import QualityBin, SiteStatus
from protos import QualityLabel


def site_status(
    heartbeat_at: datetime | None,
    recent_labels: Sequence[str],
    now: datetime,
    *,
    stale_s: float,
    bad_fraction: float,
) -> tuple[SiteStatus, list[str]]:
    """A site's status and the alerts behind it: offline when its heartbeat is stale or missing,
    weather when at least `bad_fraction` of its recent frames are bad, else online."""
    if heartbeat_at is None:
        return SiteStatus.OFFLINE, ["no heartbeat received"]
    age_s = (now - heartbeat_at).total_seconds()
    if age_s > stale_s:
        return SiteStatus.OFFLINE, [
            f"last heartbeat {age_s:.0f} s ago (stale after {stale_s:.0f} s)"
        ]
    bad = recent_fraction_bad(recent_labels)
    if bad is not None and bad >= bad_fraction:
        return SiteStatus.WEATHER, [
            f"{bad:.0%} of the last {len(recent_labels)} frames are bad (weather?)"
        ]
    return SiteStatus.ONLINE, []


CLOCK_AHEAD_ALERT_S = 120.0
"""A heartbeat stamped this much later than the centre received it comes from a site whose clock
runs ahead (a delay in delivery only ever makes it look behind): its DATE-OBS, deadlines and
schedules are off by as much."""


def clock_alerts(sent_at: datetime | None, received_at: datetime | None) -> list[str]:
    """An alert when the site's clock runs ahead of the centre's (see `CLOCK_AHEAD_ALERT_S`)."""
    if sent_at is None or received_at is None:
        return []
    ahead_s = (sent_at - received_at).total_seconds()
    if ahead_s <= CLOCK_AHEAD_ALERT_S:
        return []
    return [f"site clock runs {ahead_s / 60:.0f} min ahead of the centre's (check its NTP)"]


def agent_alerts(restarts: str | None, failed_frames: int | None) -> list[str]:
    """What a site's latest heartbeat says went wrong inside its agent (it goes on running:
    these do not change the site's status)."""
    alerts = []
    if restarts:
        alerts.append(f"restarted since the agent started: {restarts.replace(',', ', ')}")
    if failed_frames:
        alerts.append(f"{failed_frames} frame(s) failed and are being retried")
    return alerts


def recent_fraction_bad(labels: Sequence[str]) -> float | None:
    """Fraction of bad frames among `labels` (None when there are none)."""
    if not labels:
        return None
    return sum(label == QualityLabel.BAD for label in labels) / len(labels)


def quality_bins(
    times: Sequence[datetime],
    labels: Sequence[str],
    fwhm_arcsec: Sequence[float | None],
    background_adu: Sequence[float | None],
    transparency: Sequence[float | None],
    *,
    start: datetime,
    bin_s: float,
) -> list[QualityBin]:
    """Frames binned in time from `start`: fractions per class, mean seeing, background,
    transparency and the rate in frames per hour (empty bins are left out)."""
    if not times:
        return []
    offsets = np.array([(t - start).total_seconds() for t in times])
    index = np.floor(offsets / bin_s).astype(int)
    label_arr = np.array(labels)
    columns = {
        "fwhm": np.array([np.nan if v is None else v for v in fwhm_arcsec], dtype=float),
        "background": np.array([np.nan if v is None else v for v in background_adu], dtype=float),
        "transparency": np.array([np.nan if v is None else v for v in transparency], dtype=float),
    }
    bins = []
    for b in np.unique(index):
        members = index == b
        n = int(members.sum())
        means = {k: _nanmean(v[members]) for k, v in columns.items()}
        bins.append(
            QualityBin(
                start=start + timedelta(seconds=float(b) * bin_s),
                frames=n,
                frames_per_hour=n * 3600.0 / bin_s,
                fraction_good=float(np.mean(label_arr[members] == QualityLabel.GOOD)),
                fraction_medium=float(np.mean(label_arr[members] == QualityLabel.MEDIUM)),
                fraction_bad=float(np.mean(label_arr[members] == QualityLabel.BAD)),
                mean_fwhm_arcsec=means["fwhm"],
                mean_background_adu=means["background"],
                mean_transparency=means["transparency"],
            )
        )
    return bins


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None

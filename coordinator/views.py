"""What the coordinator shows: pydantic models of the fleet summary and the console's views.

The same models feed the web console's JSON API, `skyfleet status` and the demo's `--json`.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class SiteStatus(StrEnum):
    """A site's health at a glance."""

    ONLINE = "online"
    WEATHER = "weather"
    OFFLINE = "offline"


class SiteView(BaseModel):
    """One site: where it is, its health and its frame quality so far."""

    site_id: str
    name: str | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    status: SiteStatus
    alerts: list[str] = Field(default_factory=list)
    heartbeat_age_s: float | None = None
    agent_version: str | None = None
    model_version: str | None = None
    queue_depth: int | None = None
    frames: int = 0
    good: int = 0
    medium: int = 0
    bad: int = 0
    fraction_good: float = 0.0
    fraction_medium: float = 0.0
    fraction_bad: float = 0.0
    recent_fraction_bad: float | None = None
    mean_fwhm_arcsec: float | None = None
    mean_background_adu: float | None = None
    mean_transparency: float | None = None
    frames_last_hour: int = 0
    rejected: int = 0
    frames_searched: int = Field(default=0, description="Frames searched for transients.")
    frames_search_skipped: int = Field(
        default=0, description="Frames the site reported as not searched (with the reason)."
    )


class FleetSummary(BaseModel):
    """The whole fleet in one object."""

    generated_at: datetime
    sites: list[SiteView]
    frames: int
    rejected: int
    candidates: int
    frames_searched: int = 0
    frames_search_skipped: int = 0
    targets: int
    confident_targets: int
    multi_site_targets: int
    targets_by_status: dict[str, int] = {}
    """Targets per status: candidate, source, tracklet, rejected."""
    followed_targets_by_status: dict[str, int] = {}
    """The same for the targets follow-ups were requested for (sources, or an operator's pick)."""
    followups: dict[str, int]
    alerts: list[str]


class QualityBin(BaseModel):
    """A site's frame quality over one time bin."""

    start: datetime
    frames: int
    frames_per_hour: float
    fraction_good: float
    fraction_medium: float
    fraction_bad: float
    mean_fwhm_arcsec: float | None
    mean_background_adu: float | None
    mean_transparency: float | None


class FrameSearchView(BaseModel):
    """A site's record of one frame's transient search: searched or not, and why not."""

    message_id: str
    site_id: str
    searched_at: datetime
    observed_at: datetime | None
    file_name: str
    frame_sha256: str
    score_message_id: str
    attempted: bool
    candidates: int
    skipped_reason: str | None
    search_ms: float | None


class TargetView(BaseModel):
    """A fused target."""

    target_id: int
    name: str
    ra_deg: float
    dec_deg: float
    first_seen: datetime
    last_seen: datetime
    n_detections: int
    n_sites: int
    n_frames: int
    moving: bool
    confidence: float
    priority: int
    mark: str | None
    sites: list[str]


class DetectionView(BaseModel):
    """One detection of a target: a point of its light curve."""

    message_id: str
    site_id: str
    observed_at: datetime
    flux_adu: float
    flux_err_adu: float
    mag: float | None
    mag_err: float | None
    snr: float
    real_bogus: float
    filter: str | None


class TargetDetail(TargetView):
    """A target with its light curve."""

    detections: list[DetectionView]


class CutoutView(BaseModel):
    """The new, reference and difference stamps of one detection, as pixel rows."""

    message_id: str
    new: list[list[float]]
    reference: list[list[float]]
    difference: list[list[float]]


class FollowUpView(BaseModel):
    """One follow-up request and where it stands."""

    request_id: str
    target_id: int
    target_name: str
    site_id: str
    state: str
    priority: int
    score: float
    not_before: datetime | None
    deadline: datetime
    sent_at: datetime
    updated_at: datetime
    reason: str


class ModelVersionView(BaseModel):
    """Which quality model a site runs (from its heartbeat) and last scored with."""

    site_id: str
    heartbeat_model_version: str | None
    scoring_model: str | None


class NightSky(BaseModel):
    """A site's night (local noon to local noon): when the Sun sets and rises, the twilights,
    the Moon's rise, set and illuminated fraction. A time is None when the event does not
    happen that night (the Sun never gets that low, the Moon stays up)."""

    night_start: datetime
    night_end: datetime
    sunset: datetime | None
    civil_dusk: datetime | None
    nautical_dusk: datetime | None
    astronomical_dusk: datetime | None
    astronomical_dawn: datetime | None
    nautical_dawn: datetime | None
    civil_dawn: datetime | None
    sunrise: datetime | None
    moon_rise: datetime | None
    moon_set: datetime | None
    moon_illumination: float = Field(description="Illuminated fraction at local midnight, 0-1.")
    dark_hours: float = Field(description="Hours with the Sun below -18 degrees.")


class SiteDetail(SiteView):
    """One site for its page: its summary, link, weather and safety, and its night."""

    height_m: float | None = None
    horizon_limit_deg: float | None = None
    link_state: str | None = None
    conditions: dict[str, float | bool | str | None] | None = None
    night: NightSky | None = Field(default=None, description="None when the site has no location.")


class FrameView(BaseModel):
    """One scored frame in the site page's frame browser."""

    message_id: str
    site_id: str
    scored_at: datetime
    observed_at: datetime | None
    file_name: str
    label: str
    confidence: float
    reasons: list[str]
    fwhm_arcsec: float | None
    background_adu: float
    transparency: float | None
    source_count: int
    model: str
    has_thumbnail: bool


class FramePage(BaseModel):
    """One page of a site's frames, newest first, and how many match the filters in all."""

    total: int
    offset: int
    limit: int
    frames: list[FrameView]


class MetricSeries(BaseModel):
    """A site's frames as columns (oldest first) for plots against time of night."""

    times: list[datetime]
    labels: list[str]
    fwhm_arcsec: list[float | None]
    background_adu: list[float]
    transparency: list[float | None]
    truncated: bool = Field(description="True when only the latest frames are included.")


class Terminator(BaseModel):
    """The day/night boundary now: the subsolar point and the night side as a closed polygon of
    longitudes and latitudes (degrees) for a map."""

    at: datetime
    sun_lon_deg: float
    sun_lat_deg: float
    night_lon_deg: list[float]
    night_lat_deg: list[float]


class NightSiteReport(BaseModel):
    """One site's night (or the fleet's, with `site_id` "fleet")."""

    site_id: str
    night_start: datetime | None
    night_end: datetime | None
    dark_hours: float | None
    hours_on_sky: float
    downtime_hours: float | None
    frames: int
    frames_by_label: dict[str, int]
    frames_by_reason: dict[str, int]
    rejected: int
    candidates: int
    sources: int
    followups: dict[str, int]


class NightReport(BaseModel):
    """The night report: every site and the fleet together, for the night of `date` (None:
    each site's current night)."""

    date: str | None
    generated_at: datetime
    sites: list[NightSiteReport]
    fleet: NightSiteReport

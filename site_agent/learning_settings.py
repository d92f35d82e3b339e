"""Settings of the site's part in fleet learning: the samples it sends for retraining
(`[site.samples]`, used by `site_agent.samples`) and when a newly released model counts as
drifted (`[site.rollout]`, used by `site_agent.model_manager`). Plain pydantic, so that reading a
site's settings never loads torch or the bus."""

from pydantic import BaseModel, ConfigDict, Field


class SampleSettings(BaseModel):
    """How much of what a site sees goes to retraining (`[site.samples]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    quota_bytes: int = Field(
        default=64 * 1024**2,
        ge=100_000,
        description="What the site's sample bucket holds at most (oldest dropped first): 64 MiB "
        "is ~1000 quality samples of ~66 kB, a week of nights at one a minute... collected "
        "long before.",
    )
    min_interval_s: float = Field(
        default=60.0,
        ge=0.0,
        description="At most one sample this often: one a minute is ~600 a night, a varied "
        "share of the night without filling the quota with one field's repeats.",
    )


class RolloutSettings(BaseModel):
    """When a newly switched model counts as drifted (`[site.rollout]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    watch_frames: int = Field(
        default=20,
        ge=2,
        le=1000,
        description="Frames a new version scores before it is judged, compared with as many "
        "of the previous version's last frames (20: a quarter of an hour of a busy night).",
    )
    max_bad_fraction_shift: float = Field(
        default=0.35,
        gt=0.0,
        le=1.0,
        description="Largest change of the share of frames graded bad: the sky changes over a "
        "quarter of an hour (a cloud bank moves in), a model that calls everything bad moves it "
        "by far more.",
    )
    max_confidence_shift: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Largest change of the mean confidence of the verdicts.",
    )
    fetch_timeout_s: float = Field(default=120.0, gt=0.0)

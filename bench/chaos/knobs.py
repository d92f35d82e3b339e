"""The chaos suite's timings (`ChaosKnobs`): how long a fault lasts, how often the camera
writes, how many frames come before and after the fault, and how long the suite waits for the
store. `make chaos` runs with the defaults (60-s faults); `SHORT` is the form `make test` runs.

Environment (`SKYFLEET_CHAOS_*`): `FAULT_S` (60), `CADENCE_S` (0.5), `WORKDIR` (keep
every scenario's logs and stores there); the scenarios are chosen
with `SKYFLEET_BENCH_FAULTS` (comma-separated keys, `bench.settings`).
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChaosKnobs(BaseSettings):
    """One suite run's timings."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_CHAOS_", extra="forbid", frozen=True)

    fault_s: float = Field(
        default=60.0,
        gt=0.0,
        description="How long an outage lasts (hub down, link cut, disk full).",
    )
    cadence_s: float = Field(
        default=0.5, gt=0.0, description="The camera writes a frame this often."
    )
    fault_after: int = Field(
        default=8, ge=1, description="Frames written (and stored) before the fault strikes."
    )
    tail_frames: int = Field(
        default=6, ge=0, description="Frames the camera writes after the fault ends."
    )
    burst: int = Field(
        default=16,
        ge=2,
        description="Frames written at once where a fault strikes under load (a kill mid-ingest, "
        "mid-frame, the hub killed under load).",
    )
    delivery_timeout_s: float = Field(
        default=240.0, gt=0.0, description="Waiting for the store gives up after this long."
    )
    workdir: Path | None = Field(
        default=None,
        description="Keep every scenario's folder (logs, stores) here; None: a temporary folder.",
    )
    recovery_goal_s: float = Field(
        default=10.0, gt=0.0, description="After a fault ends, everything is stored within this."
    )

    pool_margin_s: float = Field(
        default=60.0,
        gt=0.0,
        description="Camera time beyond the fault the frame pool allows for (restarts, the wait "
        "for the store).",
    )

    @property
    def pool_size(self) -> int:
        """Distinct frames a scenario may write: before, during (the fault and the margin) and
        after the fault, and two bursts."""
        during = int((self.fault_s + self.pool_margin_s) / self.cadence_s)
        return self.fault_after + during + self.tail_frames + 2 * self.burst


SHORT = ChaosKnobs(
    fault_s=3.0,
    cadence_s=0.5,
    fault_after=3,
    tail_frames=2,
    burst=6,
    delivery_timeout_s=60.0,
    pool_margin_s=20.0,
)
"""The short form in `make test`: a few scenarios, faults of 3 s."""

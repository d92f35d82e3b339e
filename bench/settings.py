"""The benchmarks' knobs: one settings object (`BenchSettings`) read from `SKYFLEET_BENCH_*`
environment variables, defaults being what `python -m bench` measures unless told otherwise.

- `SKYFLEET_BENCH_PAIRS` (transients, 40): simulated 1024² pairs;
- `SKYFLEET_BENCH_SEED` (transients, 424242): their seed (docs/transients.md also reports 777
  and 31337);
- `SKYFLEET_BENCH_REFERENCE_EPOCHS` (transients, 3): frames in each reference (a site keeps up
  to 5);
- `SKYFLEET_BENCH_QUALITY_PER_CLASS` (quality, 40): simulated frames per class on each camera;
- `SKYFLEET_BENCH_INGEST_MESSAGES` (ingest, 20000): FrameScore messages ingested;
- `SKYFLEET_BENCH_POSTGRES_URL` (ingest, `postgresql://postgres@127.0.0.1:5432/test`): the
  PostgreSQL admin database the run creates its own from (PostgreSQL is skipped when
  unreachable);
- `SKYFLEET_BENCH_FAULTS` (faults, all scenarios): comma-separated scenario names.

`python -m bench --help` lists them with the benchmarks.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TRANSIENTS_SEED = 424242
"""Seed of the transient bench's simulated pairs: one the real/bogus model never trained on."""
REFERENCE_EPOCHS = 3


class BenchSettings(BaseSettings):
    """What a benchmark run may change from its defaults (`SKYFLEET_BENCH_*`)."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_BENCH_", extra="forbid")

    pairs: int = Field(
        default=40,
        ge=1,
        description="transients: simulated 1024² pairs; 40 give ~85 injections at S/N 4.5-5.5 "
        "(12 pairs held 20: a 10 % statistical error).",
    )
    seed: int = Field(default=TRANSIENTS_SEED, description="transients: the pairs' seed.")
    reference_epochs: int = Field(
        default=REFERENCE_EPOCHS,
        ge=1,
        description="transients: frames in each reference (a site keeps up to 5).",
    )
    quality_per_class: int = Field(
        default=40, ge=1, description="quality: simulated frames per class on each camera."
    )
    ingest_messages: int = Field(
        default=20_000, ge=1, description="ingest: FrameScore messages ingested."
    )
    postgres_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/test",
        description="ingest: the PostgreSQL admin database a run creates its own from "
        "(PostgreSQL skipped when unreachable).",
    )
    faults: str = Field(
        default="", description="faults: comma-separated scenario names; empty: all of them."
    )

    @property
    def fault_names(self) -> list[str]:
        """The fault scenarios asked for, in order (empty: all of them)."""
        return [name.strip() for name in self.faults.split(",")] if self.faults else []

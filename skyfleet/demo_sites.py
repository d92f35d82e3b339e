"""Simulated sites for the demo: a night of frames written into each site's folder on a
cadence, with weather that drifts between good, medium and bad, and the settings of each
site's agent (its own leaf-node NATS connected to the demo hub).

The camera is the training simulator; the agent is the real `site_agent.SiteAgent`. The
weather is a persistent random walk over the three labels (a clear spell, clouds coming in,
a bad patch), and each frame is drawn under conditions of its label.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from protos import QualityLabel
from site_agent.settings import SiteAgentSettings
from training.simulator import SimCamera
from training.simulator.dataset import simulate_labelled_frame
from training.simulator.fitsio import write_frame

DEMO_NIGHT_START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
_LABELS = list(QualityLabel)


class NightWeather:
    """The night's weather as a sequence of labels that change now and then."""

    def __init__(self, rng: np.random.Generator, *, persistence: float = 0.85) -> None:
        self._rng = rng
        self._persistence = persistence
        self.label = QualityLabel.GOOD

    def next_label(self) -> QualityLabel:
        """The label of the next exposure: usually the same as the last, else a neighbour."""
        if self._rng.random() >= self._persistence:
            index = _LABELS.index(self.label) + int(self._rng.choice([-1, 1]))
            self.label = _LABELS[min(max(index, 0), len(_LABELS) - 1)]
        return self.label


class NightSimulator:
    """Writes one site's frames into its watched folder, each renamed into place."""

    def __init__(
        self,
        site_id: str,
        folder: Path,
        *,
        camera: SimCamera | None = None,
        cadence_s: float = 2.0,
        seed: int = 0,
        start: datetime = DEMO_NIGHT_START,
        exposure_step_s: float = 120.0,
    ) -> None:
        self.site_id = site_id
        self.folder = folder
        self.camera = camera or SimCamera(width_px=512, height_px=512)
        self.cadence_s = cadence_s
        self.frames_written = 0
        self._seed = seed
        self._start = start
        self._exposure_step_s = exposure_step_s
        self._weather = NightWeather(np.random.default_rng([seed, 1]))

    def write_next(self) -> tuple[Path, QualityLabel]:
        """Simulate and write the next exposure; returns its path and true label."""
        index = self.frames_written
        label = self._weather.next_label()
        frame = simulate_labelled_frame(
            label,
            self.camera,
            seed=self._seed,
            index=index,
            date_obs=self._start + timedelta(seconds=index * self._exposure_step_s),
            site_name=self.site_id,
        )
        path = write_frame(frame, self.folder / f"{self.site_id}-{index:05d}.fits")
        self.frames_written += 1
        return path, frame.truth.label

    async def run(self, stop: asyncio.Event, *, count: int | None = None) -> None:
        """Write a frame every `cadence_s` until `stop` is set (or `count` frames are written)."""
        while not stop.is_set() and (count is None or self.frames_written < count):
            await asyncio.to_thread(self.write_next)
            try:
                await asyncio.wait_for(stop.wait(), self.cadence_s)
            except TimeoutError:
                continue


def demo_site_settings(site_id: str, root: Path, hub_leaf_url: str) -> SiteAgentSettings:
    """Settings of a demo site's agent: folders under `root/site_id`, an embedded leaf server."""
    return SiteAgentSettings(
        site_id=site_id,
        watch_dir=root / site_id / "incoming",
        work_dir=root / site_id,
        hub_leaf_url=hub_leaf_url,
        heartbeat_interval_s=5.0,
    )

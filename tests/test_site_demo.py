"""The demo's simulated night: frames appear in a site's folder complete, and the weather
changes through the night without flickering from frame to frame."""

import asyncio
import itertools

import numpy as np

from imaging.fits_reader import read_frame
from protos import QualityLabel
from skyfleet.demo_sites import NightSimulator, NightWeather
from training.simulator import SimCamera


def test_the_weather_changes_through_the_night_in_spells():
    weather = NightWeather(np.random.default_rng(4))
    labels = [weather.next_label() for _ in range(300)]
    spells = [len(list(run)) for _, run in itertools.groupby(labels)]
    assert set(labels) == set(QualityLabel)
    assert np.mean(spells) >= 3  # persistent, not a coin toss per frame
    # it moves one step at a time: never straight from good to bad
    assert all(
        {a, b} != {QualityLabel.GOOD, QualityLabel.BAD} for a, b in itertools.pairwise(labels)
    )


async def test_the_night_simulator_writes_readable_frames_on_its_cadence(tmp_path):
    night = NightSimulator(
        "demo", tmp_path, camera=SimCamera(width_px=128, height_px=128), cadence_s=0.05
    )
    await asyncio.wait_for(night.run(asyncio.Event(), count=3), 60)
    frames = sorted(tmp_path.glob("*.fits"))
    assert [f.name for f in frames] == ["demo-00000.fits", "demo-00001.fits", "demo-00002.fits"]
    assert not list(tmp_path.glob(".*"))  # nothing half-written left behind
    identities = [read_frame(f).identity for f in frames]
    assert len({i.sha256 for i in identities}) == 3
    assert identities[0].date_obs < identities[1].date_obs < identities[2].date_obs

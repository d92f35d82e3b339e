"""Simulated sites for the demo: telescopes at real observatories, a night of frames written
into each site's folder on a cadence, weather that drifts between good, medium and bad, a sky
with transients that several sites see, and a telescope that carries out follow-ups.

The camera is the training simulator; the agent is the real `site_agent.SiteAgent`. The weather
is a persistent random walk over the three labels (a clear spell, clouds coming in, a bad
patch), and each frame is drawn under conditions of its label. Each site visits a few fields in
turn, the same fields (same stars and galaxies) for every site; a field's transients, half of
them on galaxies, light up after its first visits, once the sites had the good frames to build
references from. Follow-ups are not written here: each demo site's telescope is a set of
Alpaca devices (`skyfleet.alpaca_servers`: the simulators' mount, wheel, safety monitor and
weather, and our sky camera, which renders the demo field the mount points at), driven by the
agent's own executor (`site_agent.alpaca_executor`).
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np

from imaging.catalogue import catalogue_file_name
from protos import CameraConfig, QualityLabel, SiteLocation
from site_agent.settings import AlpacaDevices, SiteAgentSettings
from skyfleet.demo_models import SignedModels
from training.simulator import SimCamera
from training.simulator.catalogue import (
    CALIBRATION_FILE_NAME,
    CATALOGUE_DIR_NAME,
    write_calibration,
    write_field_catalogue,
)
from training.simulator.conditions import sample_conditions
from training.simulator.dataset import CATALOGUE_STREAM, simulate_labelled_frame
from training.simulator.fitsio import write_frame
from training.simulator.frame import (
    FAINTEST_GALAXY_E,
    FAINTEST_STAR_E,
    SimulatedFrame,
    simulate_frame,
)
from training.simulator.galaxies import GalaxyCatalogue, draw_galaxy_catalogue
from training.simulator.pairs import inject_transients
from training.simulator.pointing import DEFAULT_SITE_LOCATION, tan_wcs
from training.simulator.starfield import StarCatalogue, draw_star_catalogue
from training.simulator.truth import InjectedTransient

DEMO_NIGHT_START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
_LABELS = list(QualityLabel)
FIELD_AIRMASS = 1.2
"""Airmass the fields' star and galaxy catalogues are drawn for (their faintest members)."""
DEMO_HOSTED_FRACTION = 0.5
"""Half of the demo's transients lie on galaxies, as supernovae do."""


@dataclass(frozen=True)
class DemoSite:
    """A telescope of the demo fleet, at a real observatory."""

    site_id: str
    location: SiteLocation
    night_start: datetime
    """UTC start of its simulated night (about 23:00 local time)."""


@dataclass(frozen=True)
class DemoField:
    """A survey field: its centre, the seed of its stars and transients, how many transients
    it holds (placed clear of bright stars, bright: S/N 40-80 in a good frame) and from which
    visit on they shine."""

    name: str
    ra_deg: float
    dec_deg: float
    seed: int
    transients: int = 0
    appears_after_visit: int = 1


DEMO_SITES = (
    DemoSite(
        "teide",
        SiteLocation(lat_deg=28.3003, lon_deg=-16.5122, height_m=2390.0),
        datetime(2026, 11, 24, 0, 0, tzinfo=UTC),
    ),
    DemoSite(
        "lasilla",
        SiteLocation(lat_deg=-29.2567, lon_deg=-70.7300, height_m=2400.0),
        datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
    ),
    DemoSite(
        "sidingspring",
        SiteLocation(lat_deg=-31.2733, lon_deg=149.0617, height_m=1165.0),
        datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
    ),
)
"""Three sites far apart in longitude; the demo fields (RA ~4 h, Dec ~ -5 deg) are high in all
three skies around local midnight in late November."""

DEMO_FIELDS = (
    DemoField("SF-0345-05", 56.25, -5.0, seed=101, transients=2, appears_after_visit=1),
    DemoField("SF-0410-02", 62.5, -2.0, seed=102, transients=1, appears_after_visit=2),
)


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


@cache
def field_stars(field: DemoField, camera: SimCamera) -> StarCatalogue:
    """The field's stars: the same for every site and visit."""
    faint = float(camera.source_magnitude(FAINTEST_STAR_E, FIELD_AIRMASS))
    wcs = tan_wcs(camera, field.ra_deg, field.dec_deg)
    return draw_star_catalogue(np.random.default_rng(field.seed), wcs, faint_mag=faint)


@cache
def field_galaxies(field: DemoField, camera: SimCamera) -> GalaxyCatalogue:
    """The field's galaxies: the same for every site and visit."""
    faint = float(camera.source_magnitude(FAINTEST_GALAXY_E, FIELD_AIRMASS))
    wcs = tan_wcs(camera, field.ra_deg, field.dec_deg)
    return draw_galaxy_catalogue(np.random.default_rng([field.seed, 3]), wcs, faint_mag=faint)


@cache
def field_transients(field: DemoField, camera: SimCamera) -> tuple[InjectedTransient, ...]:
    """The field's transients: the same sky positions and fluxes for every site and visit."""
    rng = np.random.default_rng([field.seed, 2])
    wcs = tan_wcs(camera, field.ra_deg, field.dec_deg)
    return tuple(
        inject_transients(
            rng,
            field.transients,
            (40.0, 80.0),
            sample_conditions(rng, QualityLabel.GOOD),
            camera,
            wcs,
            wcs,
            field_stars(field, camera),
            FIELD_AIRMASS,
            galaxies=field_galaxies(field, camera),
            hosted_fraction=DEMO_HOSTED_FRACTION,
        )
    )


def _lit(field: DemoField, visit: int, camera: SimCamera) -> tuple[InjectedTransient, ...]:
    """The field's transients once they have appeared (none before)."""
    return field_transients(field, camera) if visit >= field.appears_after_visit else ()


class NightSimulator:
    """Writes one site's frames into its watched folder, each renamed into place.

    Without `fields` every frame points at a random field (the quality-only night); with them,
    frames visit the fields in turn.
    """

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
        location: SiteLocation = DEFAULT_SITE_LOCATION,
        fields: tuple[DemoField, ...] = (),
        survey_frames: int | None = None,
        catalogue_dir: Path | None = None,
    ) -> None:
        self.site_id = site_id
        self.folder = folder
        self.catalogue_dir = catalogue_dir
        self.camera = camera or SimCamera(width_px=512, height_px=512)
        self.cadence_s = cadence_s
        self.frames_written = 0
        self.survey_written = 0
        self.survey_frames = survey_frames
        self._seed = seed
        self._start = start
        self._exposure_step_s = exposure_step_s
        self._location = location
        self._fields = fields
        self._weather = NightWeather(np.random.default_rng([seed, 1]))

    def write_next(self) -> tuple[Path, QualityLabel] | None:
        """Simulate and write the next survey exposure; returns its path and true label, or None
        when the survey is done."""
        index = self.frames_written
        if self.survey_frames is not None and self.survey_written >= self.survey_frames:
            return None
        label = self._weather.next_label()
        date_obs = self._start + timedelta(seconds=index * self._exposure_step_s)
        if self._fields:
            frame = self._survey_frame(label, index, date_obs)
        else:
            frame = simulate_labelled_frame(
                label,
                self.camera,
                seed=self._seed,
                index=index,
                date_obs=date_obs,
                site_name=self.site_id,
            )
        self._write_catalogue(frame, index)
        path = write_frame(frame, self.folder / f"{self.site_id}-{index:05d}.fits")
        self.frames_written += 1
        self.survey_written += 1
        return path, frame.truth.label

    def _write_catalogue(self, frame: SimulatedFrame, index: int) -> None:
        """The site's catalogue of the frame's field, written the first time it is observed."""
        if self.catalogue_dir is None:
            return
        name = catalogue_file_name(str(frame.header["OBJECT"]))
        if not (self.catalogue_dir / name).is_file():
            rng = np.random.default_rng([self._seed, index, CATALOGUE_STREAM])
            write_field_catalogue(frame, self.catalogue_dir, rng)

    def _survey_frame(self, label: QualityLabel, index: int, date_obs: datetime) -> SimulatedFrame:
        field = self._fields[index % len(self._fields)]
        visit = index // len(self._fields)
        rng = np.random.default_rng([self._seed, index])
        offset = rng.uniform(-3.0, 3.0, 2) * self.camera.pixel_scale_arcsec / 3600.0
        return simulate_frame(
            sample_conditions(rng, label),
            self.camera,
            date_obs=date_obs,
            site_name=self.site_id,
            rng=rng,
            ra_deg=field.ra_deg + offset[0],
            dec_deg=field.dec_deg + offset[1],
            stars=field_stars(field, self.camera),
            galaxies=field_galaxies(field, self.camera),
            transients=_lit(field, visit, self.camera),
            object_name=field.name,
            site=self._location,
        )

    async def run(self, stop: asyncio.Event, *, count: int | None = None) -> None:
        """Write a frame every `cadence_s` until `stop` is set (or `count` frames are written)."""
        while not stop.is_set() and (count is None or self.frames_written < count):
            await asyncio.to_thread(self.write_next)
            try:
                await asyncio.wait_for(stop.wait(), self.cadence_s)
            except TimeoutError:
                continue


def demo_camera_config(camera: SimCamera) -> CameraConfig:
    """The simulated camera as the fleet knows it (without the simulator's extras)."""
    return CameraConfig.model_validate(camera.model_dump(include=set(CameraConfig.model_fields)))


def demo_site_settings(
    site_id: str,
    root: Path,
    hub_leaf_url: str,
    *,
    location: SiteLocation | None = None,
    camera: SimCamera | None = None,
    hub_nkey_file: Path | None = None,
    models: SignedModels | None = None,
    alpaca: AlpacaDevices | None = None,
) -> SiteAgentSettings:
    """Settings of a demo site's agent: folders under `root/site_id`, an embedded leaf server,
    (given a location and camera) the description it sends to the fleet and its photometric
    calibration file (`write_site_photometry` writes it), and its telescope's Alpaca devices."""
    return SiteAgentSettings(
        site_id=site_id,
        watch_dir=root / site_id / "incoming",
        work_dir=root / site_id,
        hub_leaf_url=hub_leaf_url,
        hub_nkey_file=hub_nkey_file,
        **(models.settings() if models is not None else {}),
        heartbeat_interval_s=5.0,
        settle_s=0.3,
        location=location,
        camera=demo_camera_config(camera) if camera is not None else None,
        pixel_scale_arcsec=camera.pixel_scale_arcsec if camera is not None else None,
        saturation_adu=float(camera.saturation_adu) if camera is not None else None,
        photometry_file=root / site_id / CALIBRATION_FILE_NAME if camera is not None else None,
        alpaca=alpaca,
    )


DEMO_FILTERS = {"r": "Red", "g": "Green", "b": "Blue"}
"""The follow-up plans' filters on the simulators' wheel (Red, Green, Blue, Clear, Luminance)."""
DEMO_TIME_SCALE = 0.02
"""The demo's sky camera takes 2% of an exposure's time (a 120 s exposure in 2.4 s)."""


def demo_alpaca_devices(
    mount_address: str, camera_address: str, sky_clock_offset_s: float
) -> AlpacaDevices:
    """A demo site's devices: the simulators' mount, wheel, safety monitor and weather, our
    sky camera, and the site's simulated night as its sky clock."""
    return AlpacaDevices(
        address=mount_address,
        camera_address=camera_address,
        filters=DEMO_FILTERS,
        sky_clock_offset_s=sky_clock_offset_s,
    )


def write_site_photometry(settings: SiteAgentSettings, camera: SimCamera) -> Path:
    """Write the demo site's calibration (its catalogues beside it); returns the catalogue
    folder the site's telescope fills with the fields it observes."""
    assert settings.photometry_file is not None
    write_calibration(camera, settings.photometry_file, CATALOGUE_DIR_NAME)
    return settings.photometry_file.parent / CATALOGUE_DIR_NAME

"""Calibration at the site: bias, dark and flat frames become masters (a sigma-clipped median of
at least five, by ccdproc), a sky frame of a known bias and vignetting comes out flat with its
stars' fluxes right, a master of another size or binning is refused naming both, and bad input
(EXPTIME 0, NaN regions, saturation) gets a reason, never a crash. At the site, calibration
frames written into the watched folder are collected, never graded and never an alert."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imaging.calibration import (
    Geometry,
    Master,
    MasterSet,
    calibrate_frame,
)
from imaging.calibration_store import UNUSED_DIR, CalibrationStore
from imaging.fits_reader import read_frame
from imaging.frame_kind import FrameKind
from imaging.metrics import saturated_fraction
from imaging.quality_model import write_model
from protos import FrameScore, QualityLabel
from site_agent.agent_parts import load_searcher
from site_agent.settings import SiteAgentSettings
from skyfleet.cli import app
from tests.calibration_frames import (
    BIAS_ADU,
    READ_NOISE_ADU,
    SKY_ADU,
    Camera,
    aperture_flux,
)
from tests.quality_models import TinyQualityNet
from tests.site_agents import SMALL_CAMERA, running_agent, simulated_frames, site_settings
from tests.site_agents import wait_until as agent_wait_until
from tests.site_topology import frame_messages_at_hub
from training.simulator.sky import illumination

CENTRE_STAR = (48.0, 64.0)
CORNER_STAR = (12.0, 14.0)


def _collect(
    store: CalibrationStore, camera: Camera, folder: Path, kind: FrameKind, n: int, **cards: object
) -> None:
    """Write `n` frames of `kind` as the camera would and hand each to the store."""
    makers = {
        FrameKind.BIAS: lambda: camera.bias_frame(),
        FrameKind.DARK: lambda: camera.dark_frame(float(cards.get("EXPTIME", 100.0))),
        FrameKind.FLAT: lambda: camera.flat_frame(),
    }
    start = len(os.listdir(folder)) if folder.is_dir() else 0
    for index in range(start, start + n):
        path = camera.write(
            folder / f"{kind.value}-{index:03d}.fits",
            makers[kind](),
            IMAGETYP=kind.value.upper(),
            **{"EXPTIME": 0.0 if kind is FrameKind.BIAS else 1.0, **cards},
        )
        os.utime(path, ns=(index * 10**9, index * 10**9))  # the order the camera wrote them in
        store.collect(read_frame(path), kind)


@pytest.fixture
def camera() -> Camera:
    return Camera()


@pytest.fixture
def calibrated_site(tmp_path, camera):
    """A store with master bias (5 frames), dark (100 s) and flat (filter r) built."""
    store = CalibrationStore(tmp_path / "calibration")
    incoming = tmp_path / "incoming"
    _collect(store, camera, incoming, FrameKind.BIAS, 5)
    _collect(store, camera, incoming, FrameKind.DARK, 5, EXPTIME=100.0)
    _collect(store, camera, incoming, FrameKind.FLAT, 5)
    built, _ = store.build_due()
    assert [info.kind for info in built] == [FrameKind.BIAS, FrameKind.DARK, FrameKind.FLAT]
    return store


def _sky(
    tmp_path: Path, camera: Camera, name: str = "sky.fits", exptime_s: float = 50.0, **cards: object
):
    data = camera.sky_frame(exptime_s, [CENTRE_STAR, CORNER_STAR])
    return read_frame(
        camera.write(tmp_path / name, data, IMAGETYP="LIGHT", EXPTIME=exptime_s, **cards)
    )


def test_a_master_is_built_once_five_frames_have_arrived(tmp_path, camera):
    store = CalibrationStore(tmp_path / "calibration")
    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 4)
    assert store.due() == []

    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 1)
    (built,), _ = store.build_due()

    assert built.kind is FrameKind.BIAS and len(built.frames) == 5
    master = store.masters_for(_sky(tmp_path, camera)).bias
    assert master is not None
    error = master.data - camera.bias
    # a sigma-clipped median of 5 frames: about 0.56 of one frame's read noise
    assert abs(float(np.mean(error))) < 0.3
    assert float(np.std(error)) < 0.75 * READ_NOISE_ADU


def test_darks_and_flats_wait_for_the_master_bias(tmp_path, camera):
    store = CalibrationStore(tmp_path / "calibration")
    _collect(store, camera, tmp_path / "in", FrameKind.FLAT, 5)
    _collect(store, camera, tmp_path / "in", FrameKind.DARK, 5, EXPTIME=100.0)
    assert store.due() == []

    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 5)

    assert [kind for kind, _ in store.due()] == [FrameKind.BIAS]
    assert {info.kind for info in store.build_due()[0]} == set(FrameKind) - {FrameKind.LIGHT}


def test_a_sky_frame_comes_out_flat_with_its_stars_fluxes_right(tmp_path, camera, calibrated_site):
    frame = _sky(tmp_path, camera)

    calibrated = calibrated_site.calibrate(frame)

    assert set(calibrated.applied) == {FrameKind.BIAS, FrameKind.DARK, FrameKind.FLAT}
    data = calibrated.frame.data
    corner, centre = data[0:6, 116:128], data[40:56, 30:45]  # sky only, away from the stars
    raw_corner = frame.data[0:6, 116:128] - BIAS_ADU
    raw_centre = frame.data[40:56, 30:45] - BIAS_ADU
    assert float(np.median(raw_corner) / np.median(raw_centre)) < 0.85  # vignetted
    assert float(np.median(corner) / np.median(centre)) == pytest.approx(1.0, abs=0.02)
    raw_ratio = aperture_flux(frame.data, *CORNER_STAR) / aperture_flux(frame.data, *CENTRE_STAR)
    ratio = aperture_flux(data, *CORNER_STAR) / aperture_flux(data, *CENTRE_STAR)
    assert raw_ratio < 0.85  # the corner star loses a fifth of its light to vignetting
    assert ratio == pytest.approx(1.0, abs=0.03)  # the two stars are equally bright
    assert float(np.median(centre)) == pytest.approx(SKY_ADU * np.median(camera.response), rel=0.03)


def test_the_dark_is_scaled_to_the_exposure(tmp_path, camera, calibrated_site):
    frame = _sky(tmp_path, camera, exptime_s=50.0)

    calibrated = calibrated_site.calibrate(frame)

    rows, columns = camera.hot_pixels
    hot = calibrated.frame.data[rows, columns]
    neighbours = calibrated.frame.data[rows, columns + 2]
    assert float(np.max(np.abs(hot - neighbours))) < 8 * READ_NOISE_ADU  # 1000 ADU before
    assert float(np.min(frame.data[rows, columns] - frame.data[rows, columns + 2])) > 500


def test_a_master_of_another_geometry_is_refused_naming_both(tmp_path, calibrated_site):
    binned = Camera(shape=(48, 64), binning=(2, 2), seed=5)
    frame = _sky(tmp_path, binned)

    calibrated = calibrated_site.calibrate(frame)

    assert calibrated.applied == ()
    assert np.array_equal(calibrated.frame.data, frame.data, equal_nan=True)
    assert (
        "master bias is 128x96 px binned 1x1, the frame 64x48 px binned 2x2: not applied"
        in calibrated.notes
    )
    assert any(note.startswith("master flat is 128x96 px") for note in calibrated.notes)


def test_a_master_whose_pixels_do_not_fit_is_not_applied(tmp_path, camera):
    frame = _sky(tmp_path, camera)
    wrong = Master(FrameKind.BIAS, np.zeros((96, 96), np.float32), Geometry((96, 128), (1, 1)), 5)

    calibrated = calibrate_frame(frame, MasterSet(bias=wrong))

    assert calibrated.applied == ()
    assert calibrated.notes == (
        "master bias is 96x96 px binned 1x1, the frame 128x96 px binned 1x1: not applied",
    )


def test_a_frame_in_another_filter_is_not_flat_fielded_and_says_why(tmp_path, calibrated_site):
    frame = _sky(tmp_path, Camera(filter_name="V"))

    calibrated = calibrated_site.calibrate(frame)

    assert FrameKind.FLAT not in calibrated.applied
    assert FrameKind.BIAS in calibrated.applied
    assert any("no master flat in filter 'V'" in note for note in calibrated.notes)


def test_a_light_frame_of_exptime_zero_is_calibrated_without_the_dark(
    tmp_path, camera, calibrated_site
):
    frame = _sky(tmp_path, camera, exptime_s=0.0)

    calibrated = calibrated_site.calibrate(frame)

    assert FrameKind.DARK not in calibrated.applied
    assert set(calibrated.applied) == {FrameKind.BIAS, FrameKind.FLAT}
    assert "master dark not applied: EXPTIME is 0.0 on a light frame" in calibrated.notes


def test_nan_and_infinite_regions_stay_where_they_are(tmp_path, camera):
    store = CalibrationStore(tmp_path / "calibration")
    broken = camera.bias_frame()
    broken[10:20, 10:20] = np.nan
    store.collect(
        read_frame(camera.write(tmp_path / "b-nan.fits", broken, IMAGETYP="ZERO")), FrameKind.BIAS
    )
    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 4)
    store.build_due()
    data = camera.sky_frame(50.0, [CENTRE_STAR])
    data[60:70, 80:90] = np.nan
    data[0, :] = np.inf
    frame = read_frame(camera.write(tmp_path / "holes.fits", data, IMAGETYP="LIGHT", EXPTIME=50.0))

    calibrated = store.calibrate(frame)

    assert calibrated.applied == (FrameKind.BIAS,)
    holes = ~np.isfinite(calibrated.frame.data)
    assert np.array_equal(holes, ~np.isfinite(data))  # the bias's own hole was filled
    assert np.isnan(calibrated.frame.data[0, 0])


def test_saturated_pixels_stay_saturated(tmp_path, camera, calibrated_site):
    data = camera.sky_frame(50.0, [CENTRE_STAR])
    data[40:45, 60:70] = 65535.0
    frame = read_frame(camera.write(tmp_path / "sat.fits", data, IMAGETYP="LIGHT", EXPTIME=50.0))

    calibrated = calibrated_site.calibrate(frame, saturation_adu=65535.0)

    level = calibrated.frame.saturation_adu
    assert level is not None and level < 65535.0 - BIAS_ADU + 50
    assert saturated_fraction(calibrated.frame.data, level) == pytest.approx(
        saturated_fraction(data, 65535.0)
    )


def test_a_saturated_flat_is_kept_aside_not_combined(tmp_path, camera):
    store = CalibrationStore(tmp_path / "calibration")
    flat = np.minimum(camera.flat_frame(level_adu=80_000.0), 65535.0)
    path = camera.write(tmp_path / "bright-flat.fits", flat, IMAGETYP="Flat Field", SATURATE=65535)

    collected = store.collect(read_frame(path), FrameKind.FLAT)

    assert not collected.used
    assert collected.stored.parent == store.root / UNUSED_DIR / "flat"
    assert "saturated" in collected.note
    assert collected.frames_in_group == 0


def test_a_master_is_rebuilt_from_the_newest_frames_and_old_ones_go(tmp_path, camera):
    store = CalibrationStore(tmp_path / "calibration", min_frames=3, max_frames=4)
    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 3)
    (first,), _ = store.build_due()
    _collect(store, camera, tmp_path / "in", FrameKind.BIAS, 3)
    (second,), _ = store.build_due()

    assert len(first.frames) == 3 and len(second.frames) == 4
    assert len(set(first.frames) & set(second.frames)) == 1
    group = store.root / "frames" / "bias" / first.group
    assert sorted(p.name for p in group.iterdir()) == sorted(second.frames)


def test_skyfleet_score_applies_a_sites_masters(tmp_path, camera, calibrated_site):
    version_dir = tmp_path / "models" / "quality" / "1"
    write_model(TinyQualityNet(), version_dir, name="tiny-quality", version="1")
    sky = _sky(tmp_path, camera).path
    score = ["score", "--json", "--model", str(version_dir.parent), str(sky)]

    raw = CliRunner().invoke(app, score)
    calibrated = CliRunner().invoke(app, [*score, "--calibration", str(calibrated_site.root)])

    assert raw.exit_code == 0 and calibrated.exit_code == 0, calibrated.output
    raw_background = FrameScore.model_validate_json(raw.stdout).metrics.background_adu
    background = FrameScore.model_validate_json(calibrated.stdout).metrics.background_adu
    assert raw_background > BIAS_ADU
    assert background == pytest.approx(SKY_ADU * float(np.median(camera.response)), rel=0.05)


@pytest.fixture
def solo(tmp_path, nats_server, fleet_bus, caplog):
    """A site agent's settings on a single server, the transient search off, logs captured."""
    caplog.set_level(logging.INFO)
    _, js = fleet_bus

    def settings(**overrides: object) -> SiteAgentSettings:
        values = {"nats_url": nats_server.url, "hub_js_domain": None, "search_transients": False}
        return site_settings(tmp_path, "solo", None, **{**values, **overrides})

    return settings, js


async def test_calibration_frames_in_the_watched_folder_are_collected_not_graded(solo, caplog):
    make_settings, js = solo
    settings = make_settings()
    shape = (SMALL_CAMERA.height_px, SMALL_CAMERA.width_px)
    site_camera = Camera(shape=shape, vignetting=0.0, seed=3, filter_name=SMALL_CAMERA.filter_name)
    y, x = np.indices(shape, dtype=float)
    response = illumination(x, y, shape, SMALL_CAMERA.vignetting_fraction)

    def noise() -> np.ndarray:
        return site_camera.rng.normal(0.0, 4.0, shape)

    async with running_agent(settings) as agent:
        for index in range(5):
            site_camera.write(
                settings.watch_dir / f"bias-{index}.fits",
                (SMALL_CAMERA.bias_adu + noise()).astype(np.float32),
                IMAGETYP="Bias Frame",
                EXPTIME=0.0,
            )
            site_camera.write(
                settings.watch_dir / f"flat-{index}.fits",
                (SMALL_CAMERA.bias_adu + 25_000.0 * response + noise()).astype(np.float32),
                IMAGETYP="Flat Field",
                EXPTIME=2.0,
            )
        store = CalibrationStore(settings.calibration_dir)

        def masters_built() -> bool:
            return {info.kind for info in store.infos()} == {FrameKind.BIAS, FrameKind.FLAT}

        assert await agent_wait_until(masters_built, timeout_s=60)
        assert not any(name.endswith(".fits") for name in os.listdir(settings.watch_dir))
        assert agent.status().frames_scored == 0 and agent.status().frames_rejected == 0

        ((sky_path, _),) = simulated_frames(settings.watch_dir, [QualityLabel.GOOD])
        raw_background = float(np.median(read_frame(sky_path).data))
        (score,), rejections = await frame_messages_at_hub(js, 1, timeout_s=60)

    assert rejections == []
    assert score.frame.file_name == sky_path.name
    # the master bias came off: the background is the sky alone
    assert score.metrics.background_adu < raw_background - 0.9 * SMALL_CAMERA.bias_adu
    lines = [record.getMessage() for record in caplog.records]
    assert not any(line.startswith("ALERT bad frame") for line in lines)
    assert sum("calibration frame collected" in line for line in lines) == 10
    assert any("master built" in line and "kind=bias" in line for line in lines)


def test_the_transient_search_reads_frames_calibrated_as_scoring_does(
    tmp_path, camera, calibrated_site
):
    """The difference image and the field's reference see the pixels the score saw."""
    settings = SiteAgentSettings(site_id="calibrated", work_dir=tmp_path)
    data = camera.sky_frame(50.0, [CENTRE_STAR, CORNER_STAR])
    path = camera.write(tmp_path / "sky.fits", data, IMAGETYP="LIGHT", EXPTIME=50.0)
    searcher = load_searcher(settings)
    assert searcher is not None

    read_for_search = searcher.read(path)

    scored = calibrated_site.calibrate(read_frame(path)).frame
    assert np.array_equal(read_for_search.data, scored.data)
    assert (
        float(np.median(read_for_search.data))
        < float(np.median(read_frame(path).data)) - 0.5 * BIAS_ADU
    )

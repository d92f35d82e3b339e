"""The site's reference store: build, save, list, find by footprint, refresh with better frames."""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from imaging.fits_reader import read_frame
from imaging.transients.config import TransientSearchSettings
from imaging.transients.reference_store import ReferenceStore
from imaging.transients.references import ReferenceError, build_reference
from imaging.transients.search import search_transients
from skyfleet.cli import app
from training.realbogus.dataset import frame_from_simulated
from training.simulator.camera import SimCamera
from training.simulator.fitsio import write_frame
from training.simulator.pairs import simulate_pair


@pytest.fixture(scope="module")
def field_frames(tmp_path_factory):
    """Three files of one field (the last one noisier) and one file of another field."""
    folder = tmp_path_factory.mktemp("frames")
    camera = SimCamera(width_px=384, height_px=384, pixel_scale_arcsec=0.8)
    rng = np.random.default_rng(11)
    pair = simulate_pair(camera, n_transients=0, snr_range=(5, 10), rng=rng)
    other = simulate_pair(camera, n_transients=0, snr_range=(5, 10), rng=rng)
    paths = [
        write_frame(pair.reference, folder / "a.fits"),
        write_frame(pair.new, folder / "b.fits"),
        write_frame(other.new, folder / "elsewhere.fits"),
    ]
    return [read_frame(path) for path in paths], pair


def test_reference_combines_frames_and_keeps_noise_psf_and_stars(field_frames):
    frames, _ = field_frames
    single = build_reference(frames[:1])
    combined = build_reference(frames[:2])
    assert len(combined.info.members) == 2
    assert combined.info.noise_adu < single.info.noise_adu
    assert combined.noise.shape == combined.image.shape
    assert combined.info.star_count >= 5 and combined.info.fwhm_px > 1.0
    assert abs(float(combined.psf.sum()) - 1.0) < 1e-3


def test_store_round_trip_and_footprint_lookup(field_frames, tmp_path):
    frames, _ = field_frames
    store = ReferenceStore(tmp_path)
    built = build_reference(frames[:2])
    store.save(built, frames[:2])
    [info] = store.infos()
    loaded = store.load(info.field_id)
    assert loaded.info == info
    assert np.allclose(loaded.image, built.image, equal_nan=True)
    assert np.array_equal(loaded.stars.xy, built.stars.xy)  # read back, not searched again
    assert loaded.noise is None  # a search needs only the noise's median
    with fits.open(tmp_path / info.field_id / "reference.fits") as hdul:
        assert np.allclose(hdul["NOISE"].data, built.noise, equal_nan=True)
    assert store.field_for(frames[1].wcs, frames[1].data.shape) == info
    assert store.field_for(frames[2].wcs, frames[2].data.shape) is None


def _shifted(frame, fraction: float):
    """The frame with its WCS moved by `fraction` of its width (the sky it covers shifts)."""
    wcs = frame.wcs.deepcopy()
    wcs.wcs.crpix[0] += fraction * frame.data.shape[1]
    return dataclasses.replace(frame, wcs=wcs)


def test_a_frame_belongs_to_a_field_covering_the_sites_minimum_overlap(field_frames, tmp_path):
    frames, _ = field_frames
    ReferenceStore(tmp_path).save(build_reference(frames[:1]), frames[:1])
    [info] = ReferenceStore(tmp_path).infos()
    half_off = _shifted(frames[1], 0.4)  # the reference covers about 60 % of it
    assert ReferenceStore(tmp_path).field_for(half_off.wcs, half_off.data.shape) == info
    strict = ReferenceStore(tmp_path, TransientSearchSettings(min_overlap_fraction=0.75))
    assert strict.field_for(half_off.wcs, half_off.data.shape) is None
    outcome = search_transients(
        half_off,
        ReferenceStore(tmp_path),
        site_id="site-a",
        model=None,
        settings=TransientSearchSettings(min_overlap_fraction=0.75),
    )
    assert outcome.search.skipped_reason == "no reference covers this frame's field yet"


def test_offer_starts_fields_and_adds_better_frames(field_frames, tmp_path):
    frames, _ = field_frames
    store = ReferenceStore(tmp_path)
    first = store.offer(frames[0])
    assert first is not None and len(first.members) == 1
    second = store.offer(frames[1])
    assert second is not None and second.field_id == first.field_id
    assert len(second.members) == 2
    assert store.offer(frames[1]) is None  # the same frame twice changes nothing
    store.offer(frames[2])
    assert len(store.infos()) == 2


def test_frame_without_wcs_cannot_make_a_reference(field_frames):
    frames, _ = field_frames
    with pytest.raises(ReferenceError, match="WCS"):
        build_reference([dataclasses.replace(frames[0], wcs=None)])


def test_in_memory_simulated_frames_are_site_frames(field_frames):
    _, pair = field_frames
    frame = frame_from_simulated(pair.new, "n.fits")
    assert frame.data.dtype == np.float32 and frame.wcs is not None


def test_reference_commands_build_and_list(field_frames, tmp_path):
    frames, _ = field_frames
    runner = CliRunner()
    store = tmp_path / "refs"
    built = runner.invoke(
        app,
        ["site", "reference", "build", *(str(f.path) for f in frames[:2]), "--store", str(store)],
    )
    assert built.exit_code == 0, built.output
    assert "from 2 frame(s)" in built.output
    [info] = ReferenceStore(store).infos()
    listed = runner.invoke(
        app, ["site", "reference", "list", "--store", str(store)], env={"COLUMNS": "160"}
    )
    assert listed.exit_code == 0 and info.field_id in listed.output

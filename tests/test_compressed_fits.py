"""Compressed frames: a whole file gzipped (`.fits.gz`) or bzip2ed (`.fits.bz2`) and a
tile-compressed one (`.fz`) read to the same pixels as the plain file; one cut short is rejected
as truncated, one that inflates without end as too large; the folder watch takes all three
kinds, and a site agent scores them."""

import asyncio
import bz2
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from imaging.fits_completeness import Completeness, file_completeness
from imaging.fits_reader import FrameError, read_frame
from protos import QualityLabel, RejectReason
from site_agent.ingest import FolderWatch, is_frame_name
from tests.conftest import REAL_DATA
from tests.site_agents import running_agent, simulated_frames, site_settings
from tests.site_topology import frame_messages_at_hub

STREAK = REAL_DATA / "satellite-streak" / "long.fits"


def _gzip(source: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def _bzip2(source: Path, target: Path) -> Path:
    target.write_bytes(bz2.compress(source.read_bytes()))
    return target


def _tile_compressed(source: Path, target: Path) -> Path:
    with fits.open(source) as hdul:
        data, header = hdul[0].data, hdul[0].header
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header)]).writeto(target)
    return target


COMPRESSORS = {".fits.gz": _gzip, ".fits.bz2": _bzip2, ".fits.fz": _tile_compressed}


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_a_compressed_frame_reads_as_the_plain_file_does(tmp_path, suffix):
    plain = read_frame(STREAK)

    frame = read_frame(COMPRESSORS[suffix](STREAK, tmp_path / f"long{suffix}"))

    np.testing.assert_array_equal(frame.data, plain.data)
    assert frame.identity.pointing == plain.identity.pointing
    assert frame.identity.exptime_s == plain.identity.exptime_s
    assert frame.identity.file_name == f"long{suffix}"


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.bz2"])
def test_a_compressed_file_cut_short_is_truncated(tmp_path, suffix):
    whole = COMPRESSORS[suffix](STREAK, tmp_path / f"whole{suffix}").read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(FrameError) as refused:
        read_frame(cut)

    assert refused.value.reason is RejectReason.TRUNCATED
    assert "truncated" in refused.value.message


def test_a_file_that_inflates_without_end_is_too_large(tmp_path):
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip.compress(b"SIMPLE  =" + b"\0" * 20_000_000))

    with pytest.raises(FrameError) as refused:
        read_frame(bomb, max_pixels=100_000)

    assert refused.value.reason is RejectReason.TOO_LARGE


def test_a_compressed_file_that_holds_no_fits_is_not_fits(tmp_path):
    path = tmp_path / "notes.fits.gz"
    path.write_bytes(gzip.compress(b"observing log\n" * 100))

    with pytest.raises(FrameError) as refused:
        read_frame(path)

    assert refused.value.reason is RejectReason.NOT_FITS
    assert "gzip-compressed but not a FITS file" in refused.value.message


def test_compressed_frame_names_are_frames_and_other_archives_are_not():
    for name in ("a.fits.gz", "a.FITS.GZ", "a.fit.bz2", "a.fits.bz2", "a.fits.fz", "a.fz"):
        assert is_frame_name(name), name
    for name in ("log.gz", "catalogue.csv.bz2", ".a.fits.gz"):
        assert not is_frame_name(name), name


def test_a_whole_compressed_file_is_complete_once_settled(tmp_path):
    verdict = file_completeness(_gzip(STREAK, tmp_path / "long.fits.gz"))
    assert verdict.verdict is Completeness.COMPLETE


async def test_the_folder_watch_takes_every_compressed_kind(tmp_path):
    folder = tmp_path / "incoming"
    watch = FolderWatch(folder, settle_s=0.3)
    watch.start()
    try:
        for suffix, compress in COMPRESSORS.items():
            compress(STREAK, folder / f"long{suffix}")
        taken = set()
        for _ in COMPRESSORS:
            path, _ = await asyncio.wait_for(watch.next_ready(), 10.0)
            taken.add(path.name)
    finally:
        await watch.stop()

    assert taken == {f"long{suffix}" for suffix in COMPRESSORS}


async def test_a_site_agent_scores_gzipped_and_bzipped_frames(tmp_path, nats_server, fleet_bus):
    _, js = fleet_bus
    settings = site_settings(
        tmp_path,
        "solo",
        None,
        nats_url=nats_server.url,
        hub_js_domain=None,
        search_transients=False,
    )
    staged = tmp_path / "staged"
    (sky, _), (other, _) = simulated_frames(staged, [QualityLabel.GOOD, QualityLabel.GOOD])
    async with running_agent(settings):
        for source, compress, suffix in ((sky, _gzip, ".fits.gz"), (other, _bzip2, ".fits.bz2")):
            partial = settings.watch_dir / f".{source.stem}{suffix}.part"
            compress(source, partial)
            os.rename(partial, settings.watch_dir / f"{source.stem}{suffix}")
        scores, rejections = await frame_messages_at_hub(js, 2, timeout_s=60)

    assert rejections == []
    assert sorted(score.frame.file_name for score in scores) == sorted(
        [f"{sky.stem}.fits.gz", f"{other.stem}.fits.bz2"]
    )

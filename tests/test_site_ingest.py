"""The folder watch hands out each complete frame once: after a rename at once, after a slow
write only when the file stopped changing and holds all its FITS headers promise (or after a
long timeout, to be rejected); FITS names only, directories named like frames too."""

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from site_agent.ingest import FolderWatch


@asynccontextmanager
async def _watching(folder: Path, **options: Any) -> AsyncIterator[FolderWatch]:
    """A `FolderWatch` of `folder` watching for the duration of the block."""
    watch = FolderWatch(folder, **options)
    watch.start()
    try:
        yield watch
    finally:
        await watch.stop()


async def _ready_within(watch: FolderWatch, timeout_s: float):
    return await asyncio.wait_for(watch.next_ready(), timeout_s)


@pytest.fixture
async def watch(tmp_path):
    async with _watching(tmp_path / "incoming", settle_s=0.5) as watch:
        yield watch


async def test_a_file_renamed_into_place_is_taken_at_once(tmp_path):
    folder = tmp_path / "incoming"
    async with _watching(folder, settle_s=30.0) as watch:
        partial = folder / ".frame-001.fits.part"
        partial.write_bytes(b"\0" * 2880 * 4)
        started = time.monotonic()
        os.rename(partial, folder / "frame-001.fits")
        path, _ = await _ready_within(watch, 2.0)
        assert path == folder / "frame-001.fits"
        assert time.monotonic() - started < 2.0


async def test_a_file_being_written_is_taken_only_once_it_stops_changing(watch):
    path = watch.folder / "slow.fits"
    with path.open("wb") as handle:
        for _ in range(6):
            handle.write(b"\0" * 2880)
            handle.flush()
            last_write = time.monotonic()
            await asyncio.sleep(0.2)  # shorter than settle_s: still being written
            assert watch.waiting == 1
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(watch.next_ready(), 0.01)
    ready, _ = await _ready_within(watch, 3.0)
    assert ready == path
    assert time.monotonic() - last_write >= watch.settle_s
    with pytest.raises(TimeoutError):  # handed out once
        await asyncio.wait_for(watch.next_ready(), 1.0)


async def test_only_fits_names_are_taken(watch):
    for name in ("notes.txt", ".hidden.fits", "frame.fits.part", "frame.fits.fz", "b.FIT"):
        (watch.folder / name).write_bytes(b"\0" * 2880)
    taken = {(await _ready_within(watch, 3.0))[0].name for _ in range(2)}
    assert taken == {"frame.fits.fz", "b.FIT"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.next_ready(), 1.0)


async def test_a_directory_named_like_a_frame_is_handed_out_for_rejection(watch):
    (watch.folder / "x.fits").mkdir()
    path, _ = await _ready_within(watch, 3.0)
    assert path.name == "x.fits" and path.is_dir()


async def test_frames_already_in_the_folder_are_found_at_start(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for index in range(3):
        (folder / f"old-{index}.fits").write_bytes(b"\0" * 2880)
    async with _watching(folder, settle_s=0.5) as watch:
        names = sorted([(await _ready_within(watch, 3.0))[0].name for _ in range(3)])
    assert names == ["old-0.fits", "old-1.fits", "old-2.fits"]


async def test_polling_mode_finds_frames_on_folders_without_inotify(tmp_path):
    folder = tmp_path / "share"
    async with _watching(folder, settle_s=0.3, polling=True, poll_interval_s=0.2) as watch:
        (folder / "remote.fits").write_bytes(b"\0" * 2880)
        path, _ = await _ready_within(watch, 3.0)
    assert path.name == "remote.fits"


# --- files whose FITS headers promise more than they hold -------------------------------------


def _fits_frame(side_px: int = 256) -> bytes:
    """A whole FITS frame as a camera writes it: one header block, then the pixels."""
    pixels = np.random.default_rng(0).normal(1000.0, 10.0, (side_px, side_px)).astype(np.float32)
    buffer = io.BytesIO()
    fits.PrimaryHDU(pixels).writeto(buffer)
    return buffer.getvalue()


async def test_a_frame_written_in_two_halves_apart_is_taken_once_whole(tmp_path):
    folder = tmp_path / "incoming"
    async with _watching(folder, settle_s=1.0, incomplete_timeout_s=30.0) as watch:
        content = _fits_frame()
        path = folder / "slow.fits"
        with path.open("wb") as handle:
            handle.write(content[: len(content) // 2])
            handle.flush()
            with pytest.raises(TimeoutError):  # settled after 1 s, but half a frame
                await asyncio.wait_for(watch.next_ready(), 4.0)
            assert watch.waiting == 1
            handle.write(content[len(content) // 2 :])
        ready, _ = await _ready_within(watch, 3.0)
        assert ready == path
        assert ready.read_bytes() == content
        with pytest.raises(TimeoutError):  # handed out once
            await asyncio.wait_for(watch.next_ready(), 1.5)


async def test_a_frame_cut_short_and_never_finished_is_handed_out_after_the_timeout(tmp_path):
    folder = tmp_path / "incoming"
    async with _watching(folder, settle_s=0.3, incomplete_timeout_s=2.0) as watch:
        content = _fits_frame()
        (folder / "died.fits").write_bytes(content[: len(content) // 3])
        written = time.monotonic()
        with pytest.raises(TimeoutError):  # settled, but the camera may still come back
            await asyncio.wait_for(watch.next_ready(), 1.5)
        path, _ = await _ready_within(watch, 3.0)
        assert path.name == "died.fits"
        assert time.monotonic() - written >= 2.0


async def test_an_incomplete_frame_renamed_into_place_is_taken_at_once(tmp_path):
    folder = tmp_path / "incoming"
    async with _watching(folder, settle_s=0.3, incomplete_timeout_s=30.0) as watch:
        partial = folder / ".cut.fits.part"
        partial.write_bytes(_fits_frame()[:5000])
        os.rename(partial, folder / "cut.fits")  # the camera says it is done: the reader judges
        path, _ = await _ready_within(watch, 2.0)
    assert path.name == "cut.fits"


async def test_an_incomplete_frame_left_from_before_the_start_is_judged_by_its_age(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    cut = _fits_frame()[:5000]
    (folder / "old-cut.fits").write_bytes(cut)
    (folder / "new-cut.fits").write_bytes(cut)
    an_hour_ago = time.time() - 3600
    os.utime(folder / "old-cut.fits", (an_hour_ago, an_hour_ago))
    async with _watching(folder, settle_s=0.3, incomplete_timeout_s=30.0) as watch:
        path, _ = await _ready_within(watch, 2.0)
        assert path.name == "old-cut.fits"  # unchanged for an hour: the camera is gone
        with pytest.raises(TimeoutError):  # just written: wait for the rest
            await asyncio.wait_for(watch.next_ready(), 1.5)


async def test_files_waiting_to_be_retried_go_again_once_another_one_goes_through(tmp_path):
    """A full disk failed two frames; the first frame through after it brings them back at
    once, not after their back-off. A file that keeps failing keeps its back-off."""
    folder = tmp_path / "incoming"
    async with _watching(folder, settle_s=0.0) as watch:
        failed = [folder / "a.fits", folder / "b.fits"]
        for path in failed:
            path.write_bytes(b"\0" * 2880)
        assert {(await _ready_within(watch, 3.0))[0] for _ in failed} == set(failed)
        for path in failed:
            assert watch.retry(path) >= 5.0  # the first back-off: seconds away

        watch.succeeded(folder / "c.fits")

        assert {(await _ready_within(watch, 1.0))[0] for _ in failed} == set(failed)
        stubborn = failed[0]
        for _ in range(5):
            watch.retry(stubborn)
        watch.succeeded(folder / "d.fits")
        with pytest.raises(TimeoutError):
            await _ready_within(watch, 1.0)

"""The folder watch hands out each complete frame once: after a rename at once, after a slow
write only when the file stopped changing; FITS names only, directories named like frames too."""

import asyncio
import os
import time

import pytest

from site_agent.ingest import FolderWatch


async def _ready_within(watch: FolderWatch, timeout_s: float):
    return await asyncio.wait_for(watch.next_ready(), timeout_s)


@pytest.fixture
async def watch(tmp_path):
    folder = tmp_path / "incoming"
    watch = FolderWatch(folder, settle_s=0.5)
    watch.start()
    yield watch
    await watch.stop()


async def test_a_file_renamed_into_place_is_taken_at_once(tmp_path):
    folder = tmp_path / "incoming"
    watch = FolderWatch(folder, settle_s=30.0)
    watch.start()
    try:
        partial = folder / ".frame-001.fits.part"
        partial.write_bytes(b"\0" * 2880 * 4)
        started = time.monotonic()
        os.rename(partial, folder / "frame-001.fits")
        path, _ = await _ready_within(watch, 2.0)
        assert path == folder / "frame-001.fits"
        assert time.monotonic() - started < 2.0
    finally:
        await watch.stop()


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
    watch = FolderWatch(folder, settle_s=0.5)
    watch.start()
    try:
        names = sorted([(await _ready_within(watch, 3.0))[0].name for _ in range(3)])
    finally:
        await watch.stop()
    assert names == ["old-0.fits", "old-1.fits", "old-2.fits"]


async def test_polling_mode_finds_frames_on_folders_without_inotify(tmp_path):
    folder = tmp_path / "share"
    watch = FolderWatch(folder, settle_s=0.3, polling=True, poll_interval_s=0.2)
    watch.start()
    try:
        (folder / "remote.fits").write_bytes(b"\0" * 2880)
        path, _ = await _ready_within(watch, 3.0)
    finally:
        await watch.stop()
    assert path.name == "remote.fits"

"""The processed-frames store remembers finished files across restarts, per file version."""

import os

from site_agent.state import FileFingerprint, ProcessedFrames


def test_a_settled_file_stays_settled_after_reopening(tmp_path):
    frame = tmp_path / "a.fits"
    frame.write_bytes(b"x" * 2880)
    with ProcessedFrames(tmp_path / "state.sqlite3") as state:
        state.settle(
            FileFingerprint.of(frame), sha256="ab" * 32, outcome="scored", message_id="m:1"
        )
    with ProcessedFrames(tmp_path / "state.sqlite3") as state:
        assert state.is_settled(FileFingerprint.of(frame))
        assert state.count("scored") == 1
        assert state.count("rejected") == 0


def test_a_new_version_of_a_file_is_not_settled(tmp_path):
    frame = tmp_path / "a.fits"
    frame.write_bytes(b"x" * 2880)
    with ProcessedFrames(tmp_path / "state.sqlite3") as state:
        state.settle(FileFingerprint.of(frame), sha256=None, outcome="rejected", message_id="m:1")
        frame.write_bytes(b"y" * 5760)
        assert not state.is_settled(FileFingerprint.of(frame))


def test_a_file_touched_without_change_of_content_counts_as_new(tmp_path):
    frame = tmp_path / "a.fits"
    frame.write_bytes(b"x" * 2880)
    with ProcessedFrames(tmp_path / "state.sqlite3") as state:
        state.settle(FileFingerprint.of(frame), sha256=None, outcome="scored", message_id="m:1")
        stat = frame.stat()
        os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        # processed again; its message id comes from its sha256, so the bus stores it once
        assert not state.is_settled(FileFingerprint.of(frame))

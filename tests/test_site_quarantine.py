"""Malformed inputs are quarantined with a reason each, reported on the bus, and the agent
keeps scoring good frames afterwards."""

import json
import os
from io import BytesIO

import numpy as np
from astropy.io import fits

from protos import QualityLabel, RejectReason
from site_agent.quarantine import REASON_SUFFIX
from tests.disks import read_only
from tests.site_agents import running_agent, simulated_frames, site_settings, wait_until
from tests.site_topology import frame_messages_at_hub, hub_sourcing, running_hub

R = RejectReason


def _fits_bytes(data: np.ndarray | None = None, **header: object) -> bytes:
    hdu = fits.PrimaryHDU(data=data)
    for key, value in header.items():
        hdu.header[key] = value
    buffer = BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def _raw_header(cards: dict[str, object]) -> bytes:
    text = "".join(
        f"{key:<8}= {value!s:>20}".ljust(80) if key != "END" else "END".ljust(80)
        for key, value in cards.items()
    )
    return text.encode().ljust(2880, b" ")


def write_malformed_corpus(folder) -> dict[str, set[RejectReason]]:
    """Write every kind of bad input; returns file name -> the reasons it may be given."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _fits_bytes(np.ones((64, 64), dtype=np.float32))
    cube = np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32)
    compressed = fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(np.ones((64, 64), dtype=np.float32))]
    )
    compressed.writeto(folder / ".compressed.tmp")
    compressed_bytes = (folder / ".compressed.tmp").read_bytes()
    (folder / ".compressed.tmp").unlink()
    table = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns(
                [fits.Column(name="x", format="E", array=np.arange(10, dtype=np.float32))]
            ),
        ]
    )
    table_buffer = BytesIO()
    table.writeto(table_buffer)
    corpus: dict[str, tuple[bytes, set[RejectReason]]] = {
        "zero-bytes.fits": (b"", {R.EMPTY_FILE}),
        "truncated.fits": (good[: len(good) - 2880 - 1000], {R.TRUNCATED}),
        "truncated-header.fits": (good[:1000], {R.TRUNCATED, R.NOT_FITS}),
        "header-only.fits": (good[:2880], {R.TRUNCATED}),
        "nan-only.fits": (_fits_bytes(np.full((64, 64), np.nan, np.float32)), {R.ALL_NAN}),
        "inf-only.fits": (_fits_bytes(np.full((64, 64), np.inf, np.float32)), {R.ALL_NAN}),
        "cube.fits": (_fits_bytes(cube), {R.BAD_DIMENSIONS, R.NO_IMAGE_DATA}),
        "one-d.fits": (_fits_bytes(np.ones(4096, np.float32)), {R.BAD_DIMENSIONS, R.NO_IMAGE_DATA}),
        "long-strip.fits": (_fits_bytes(np.ones((1, 100_000), np.float32)), {R.BAD_DIMENSIONS}),
        "tiny.fits": (_fits_bytes(np.ones((4, 4), np.float32)), {R.BAD_DIMENSIONS}),
        "bitpix-24.fits": (
            _raw_header(
                {"SIMPLE": "T", "BITPIX": 24, "NAXIS": 2, "NAXIS1": 64, "NAXIS2": 64, "END": ""}
            )
            + b"\0" * 64 * 64 * 3,
            {R.UNSUPPORTED_BITPIX},
        ),
        "huge-claim.fits": (
            _raw_header(
                {
                    "SIMPLE": "T",
                    "BITPIX": -32,
                    "NAXIS": 2,
                    "NAXIS1": 90000,
                    "NAXIS2": 90000,
                    "END": "",
                }
            ),
            {R.TOO_LARGE, R.TRUNCATED},
        ),
        "empty-primary.fits": (_fits_bytes(None), {R.NO_IMAGE_DATA}),
        "table-only.fits": (table_buffer.getvalue(), {R.NO_IMAGE_DATA}),
        "not-fits.fits": (b"this is a text file, not an image\n" * 10, {R.NOT_FITS}),
        "png.fits": (b"\x89PNG\r\n\x1a\n" + b"\0" * 4000, {R.NOT_FITS}),
        "random.fit": (np.random.default_rng(1).bytes(8640), {R.NOT_FITS}),
        "garbage.fits.fz": (b"\x1f\x8b" + b"\0" * 3000, {R.NOT_FITS}),
        "truncated-tiles.fits.fz": (
            compressed_bytes[: len(compressed_bytes) - 2000],
            {R.TRUNCATED, R.NO_IMAGE_DATA, R.UNREADABLE},
        ),
        "unreadable.fits": (good[:3000], {R.UNREADABLE, R.TRUNCATED}),  # root can read anyway
    }
    for name, (content, _) in corpus.items():
        (folder / name).write_bytes(content)
    os.chmod(folder / "unreadable.fits", 0)
    (folder / "x.fits").mkdir()
    (folder / "x.fits" / "inside.txt").write_text("a directory, not a frame")
    os.symlink(folder / "nowhere.fits", folder / "dangling.fits")
    expected = {name: reasons for name, (_, reasons) in corpus.items()}
    expected["x.fits"] = {R.NOT_A_FILE}
    expected["dangling.fits"] = {R.UNREADABLE, R.NOT_A_FILE}
    return expected


def _good_frames_of_every_layout(tmp_path, folder) -> list:
    """Simulated frames as plain, multi-extension and tile-compressed FITS, renamed into place."""
    staged = tmp_path / "staged"
    plain = [p for p, _ in simulated_frames(staged, [QualityLabel.GOOD, QualityLabel.BAD])]
    with fits.open(plain[0]) as hdul:
        data, header = hdul[0].data, hdul[0].header
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header)]).writeto(staged / "mef.fits")
        # float pixels: integer tiles with BZERO are not readable yet (reported to fits_reader)
        packed = fits.CompImageHDU(data.astype(np.float32))
        fits.HDUList([fits.PrimaryHDU(), packed]).writeto(staged / "packed.fits.fz")
    paths = [*plain, staged / "mef.fits", staged / "packed.fits.fz"]
    for path in paths:
        path.rename(folder / path.name)
    return [folder / path.name for path in paths]


async def test_malformed_inputs_are_quarantined_and_good_frames_still_scored(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "south", hub)
        async with hub_sourcing(hub, ["south"]) as hub_js, running_agent(settings) as agent:
            expected = write_malformed_corpus(settings.watch_dir)
            assert len(expected) >= 20
            assert await wait_until(
                lambda: agent.status().frames_rejected == len(expected), timeout_s=60
            ), agent.status()
            good = [p.name for p in _good_frames_of_every_layout(tmp_path, settings.watch_dir)]
            assert await wait_until(lambda: agent.status().frames_scored == len(good), timeout_s=60)
            scored, rejections = await frame_messages_at_hub(
                hub_js, len(expected) + len(good), timeout_s=20
            )

    rejected = {m.file_name: m for m in rejections}
    assert set(rejected) == set(expected)
    assert len(rejections) == len(expected)
    for name, reasons in expected.items():
        assert rejected[name].reason in reasons, (name, rejected[name].reason)
        record = json.loads((settings.quarantine_dir / (name + REASON_SUFFIX)).read_text())
        assert record["reason"] == rejected[name].reason.value
        assert name not in os.listdir(settings.watch_dir)
        assert (settings.quarantine_dir / name).exists() or (
            settings.quarantine_dir / name
        ).is_symlink()
    assert sorted(m.frame.file_name for m in scored) == sorted(good)


async def test_a_file_that_cannot_be_quarantined_is_reported_as_left_in_place(tmp_path):
    with running_hub(tmp_path / "hub") as hub:
        settings = site_settings(tmp_path, "ro", hub)
        async with hub_sourcing(hub, ["ro"]) as hub_js, running_agent(settings) as agent:
            with read_only(settings.quarantine_dir):
                (settings.watch_dir / "not-fits.fits").write_bytes(b"not an image\n" * 300)
                assert await wait_until(lambda: agent.status().frames_rejected == 1, timeout_s=30)
            good = simulated_frames(tmp_path / "staged", [QualityLabel.GOOD])
            for path, _ in good:
                path.rename(settings.watch_dir / path.name)
            _, (rejection,) = await frame_messages_at_hub(hub_js, 2, timeout_s=60)
            assert await wait_until(lambda: agent.status().frames_scored == 1, timeout_s=30)

    assert rejection.quarantine_path is None
    assert "left in place, not quarantined" in rejection.message
    assert "Read-only file system" in rejection.message
    assert (settings.watch_dir / "not-fits.fits").exists()
    assert os.listdir(settings.quarantine_dir) == []

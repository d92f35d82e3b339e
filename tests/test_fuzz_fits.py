"""Fuzzing FITS ingest: whatever file lands in a site's folder, `read_frame` either returns a
valid frame or raises `FrameError` with a reason and a one-line message, `file_completeness`
either judges it or raises OSError, no other exception escapes, and a header promising more
pixels than the file holds, or than the site will read, is refused without allocating them.

Inputs are headers built card by card (BITPIX of every legal and illegal value, odd or missing
NAXIS, BZERO/BSCALE/BLANK, EXPTIME of 0, below 0 or not finite, celestial and non-celestial WCS,
random cards), valid files of each layout cut at every kind of offset, tile-compressed files with
bytes flipped, gzip-compressed files, and random bytes named `.fits`. Files are written to one
folder per module (a function-scoped `tmp_path` would be shared by hypothesis's examples
anyway). Budgets are small because the suite shares two cores; `database=None` keeps no example
database (a failure prints the example that reproduces it; hypothesis still keeps a cache in
`.hypothesis/`, which it git-ignores itself). The memory checks run in a fresh interpreter, so
its peak RSS (`ru_maxrss`) is theirs alone.
"""

import gzip
import hashlib
import io
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imaging.fits_completeness import FitsCompleteness, file_completeness
from imaging.fits_reader import Frame, FrameError, read_frame
from protos import FrameIdentity, RejectReason
from tests.conftest import REPO_ROOT

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BLOCK = 2880
LEGAL_BITPIX = [8, 16, 32, 64, -32, -64]
DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
MAX_DATA_BYTES = 64 * 64 * 8
"""Data written for one generated header at most (a header may promise far more)."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-fits")


def assert_reads_or_is_refused(path: Path) -> Frame | None:
    """The property every file must satisfy; returns the frame when it was read."""
    try:
        structure = file_completeness(path)
    except OSError:
        structure = None
    assert structure is None or isinstance(structure, FitsCompleteness)
    try:
        frame = read_frame(path)
    except FrameError as exc:
        assert isinstance(exc.reason, RejectReason)
        assert exc.message.strip(), repr(exc)
        assert "\n" not in str(exc) and "\r" not in str(exc), repr(str(exc))
        event(f"refused: {exc.reason.value}")
        return None
    event("read")
    height, width = frame.data.shape
    assert frame.data.dtype == np.float32 and frame.data.dtype.isnative
    assert min(height, width) >= 16
    identity = frame.identity
    assert (identity.width_px, identity.height_px) == (width, height)
    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity.exptime_s is None or (
        math.isfinite(identity.exptime_s) and identity.exptime_s >= 0
    )
    assert FrameIdentity.model_validate_json(identity.model_dump_json()) == identity
    return frame


# --- headers built card by card -----------------------------------------------------------------


def card(keyword: str, value: str | None = None) -> bytes:
    """One 80-byte card: `KEYWORD = value` (fixed format), or the keyword alone."""
    text = keyword if value is None else f"{keyword:<8}= {value:>20}"
    return text.ljust(80)[:80].encode("ascii")


def header_bytes(cards: list[bytes]) -> bytes:
    text = b"".join(cards) + card("END")
    return text + b" " * (-len(text) % BLOCK)


def as_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def fits_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
numbers = st.sampled_from(
    [
        *["0", "1", "-1", "0.0", "1.5", "-7.25", "1E300", "-1E300", "1E-300", "1E999", "-1E999"],
        *["NAN", "INF", "-INF", "99999999999999999999", "T", "F", "'abc'", "''"],
    ]
) | st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x!r}".upper())
celestial_types = ["'RA---TAN'", "'DEC--TAN'", "'GLON-CAR'", "'GLAT-CAR'", "'RA---SIN'"]
other_types = ["'WAVE'", "'LINEAR'", "'FREQ'", "'PIXEL'", "'RA---XXX'", "''", "'DEC--TAN'"]
optional_cards = {
    "BZERO": numbers,
    "BSCALE": numbers,
    "BLANK": numbers,
    "EXPTIME": numbers,
    "EXPOSURE": numbers,
    "SATURATE": numbers,
    "MJD-OBS": numbers,
    "DATE-OBS": st.sampled_from(
        ["2026-11-24T03:15:00", "2026-11-24", "24/11/98", "99999-01-01", "2026-02-30T00:00:00"]
    ).map(fits_string)
    | printable.map(fits_string),
    "TIME-OBS": printable.map(fits_string),
    "FILTER": printable.map(fits_string),
    "CTYPE1": st.sampled_from(celestial_types + other_types),
    "CTYPE2": st.sampled_from(celestial_types + other_types),
    "CRVAL1": numbers,
    "CRVAL2": numbers,
    "CRPIX1": numbers,
    "CRPIX2": numbers,
    "CDELT1": numbers,
    "CDELT2": numbers,
    "CD1_1": numbers,
    "CD2_2": numbers,
    "PC1_2": numbers,
    "RADESYS": st.sampled_from(["'ICRS'", "'FK5'", "'XYZ'", "1"]),
    "EQUINOX": numbers,
}
random_keyword = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), min_size=1, max_size=8
)


def mostly(
    draw: st.DrawFn, usual: st.SearchStrategy, odd: st.SearchStrategy, percent: int
) -> object:
    """A value from `usual` about `percent` % of the time, else from `odd` (which shrinks to
    `usual`: hypothesis shrinks the integer towards 0)."""
    return draw(usual) if draw(st.integers(0, 99)) < percent else draw(odd)


@st.composite
def image_headers(draw: st.DrawFn) -> tuple[list[bytes], int | None, tuple[int, ...] | None]:
    """The cards of an image HDU after SIMPLE/XTENSION, and the BITPIX and numpy shape they
    promise when both are sensible (None otherwise). Each structural card is usually legal, so
    that a good share of files get as far as the pixels."""
    bitpix = mostly(
        draw,
        st.sampled_from([str(b) for b in LEGAL_BITPIX]),
        st.sampled_from(["0", "1", "7", "-8", "-16", "24", "128", "'abc'", "1.5", "T", ""])
        | st.none(),
        80,
    )
    naxis = mostly(
        draw,
        st.just("2"),
        st.sampled_from(["0", "1", "3", "4", "6", "-1", "999", "'2'", "2.0", ""]) | st.none(),
        80,
    )
    cards = []
    if bitpix is not None:
        cards.append(card("BITPIX", bitpix))
    if naxis is not None:
        cards.append(card("NAXIS", naxis))
    axes: list[int | None] = []
    # At most 6 axes keeps the examples readable; 17 axes of 20 digits each, which once made
    # `file_completeness` raise OverflowError, is its own test below.
    for axis in range(1, min(as_int(naxis) or 0, 6) + 1):
        length = mostly(
            draw,
            st.integers(16, 64).map(str),
            st.integers(0, 20).map(str)
            | st.sampled_from(["1", "-1", "1000000000", "2147483648", "9000000000000000000"])
            | st.sampled_from(["'a'", "", "1.5"])
            | st.none(),
            85 if axis <= 2 else 30,
        )
        axes.append(as_int(length))
        if length is not None:
            cards.append(card(f"NAXIS{axis}", length))
    for keyword, values in optional_cards.items():
        value = mostly(draw, st.none(), values, 75)
        if value is not None:
            cards.append(card(keyword, value))
    for _ in range(draw(st.integers(0, 3))):
        cards.append(card(draw(random_keyword), draw(numbers | printable.map(fits_string))))
    if draw(st.integers(0, 99)) >= 90:
        cards.insert(draw(st.integers(0, len(cards))), draw(st.binary(min_size=80, max_size=80)))
    shape = None
    if axes and None not in axes and as_int(naxis) == len(axes):
        shape = tuple(n for n in reversed(axes) if n is not None)
    return cards, as_int(bitpix), shape


@st.composite
def generated_files(draw: st.DrawFn) -> bytes:
    """A primary image, or a primary without data and an image (or table) extension."""
    cards, bitpix, shape = draw(image_headers())
    if draw(st.booleans()):
        first = [card("SIMPLE", "T"), *cards]
        prefix = b""
    else:
        primary = [card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0")]
        primary.append(card("EXTEND", draw(st.sampled_from(["T", "F"]))))
        extension = mostly(
            draw, st.just("'IMAGE   '"), st.sampled_from(["'BINTABLE'", "'TABLE   '", "'FOO'"]), 75
        )
        first = [card("XTENSION", extension), *cards, card("PCOUNT", "0"), card("GCOUNT", "1")]
        prefix = header_bytes(primary)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sensible = bitpix in DTYPES and shape is not None and all(n >= 0 for n in shape)
    promised = abs(bitpix) // 8 * math.prod(shape) if sensible else 0
    content = draw(st.sampled_from(["noise", "random", "constant", "short", "long"]))
    size = min(promised, MAX_DATA_BYTES)
    if content == "short":
        size = draw(st.integers(0, max(size - 1, 0)))
    elif content == "long":
        size += draw(st.integers(1, BLOCK))
    if content == "noise" and sensible and size == promised:
        data = rng.normal(1000.0, 30.0, shape).clip(0, 250).astype(DTYPES[bitpix]).tobytes()
    elif content == "constant":
        data = bytes([draw(st.integers(0, 255))]) * size
    else:
        data = rng.bytes(size)
    data += b"\0" * (-len(data) % BLOCK) if draw(st.booleans()) else b""
    return prefix + header_bytes(first) + data


@settings(FUZZ, max_examples=300)
@given(content=generated_files())
def test_any_generated_header_reads_or_is_refused_with_a_reason(folder, content):
    path = folder / "generated.fits"
    path.write_bytes(content)
    assert_reads_or_is_refused(path)


@FUZZ
@given(
    bitpix=st.sampled_from(LEGAL_BITPIX),
    exptime=st.sampled_from(["0", "-1", "-0.5", "NAN", "INF", "1E999", "'60'", "T", "60"]),
    bzero=st.sampled_from(["0", "32768", "-1E30", "1E38", "1.5"]),
    bscale=st.sampled_from(["1", "0", "-1", "1E-30", "1E30", "0.25"]),
)
def test_scaled_frames_read_as_physical_values_or_are_refused(
    folder, bitpix, exptime, bzero, bscale
):
    raw = np.random.default_rng(7).normal(100.0, 10.0, (24, 32)).astype(DTYPES[bitpix])
    cards = [card("SIMPLE", "T"), card("BITPIX", str(bitpix)), card("NAXIS", "2")]
    cards += [card("NAXIS1", "32"), card("NAXIS2", "24"), card("EXPTIME", exptime)]
    cards += [card("BZERO", bzero), card("BSCALE", bscale)]
    path = folder / "scaled.fits"
    path.write_bytes(header_bytes(cards) + raw.tobytes())

    frame = assert_reads_or_is_refused(path)

    if frame is not None:
        expected = raw.astype(np.float64) * float(bscale) + float(bzero)
        np.testing.assert_allclose(frame.data, expected.astype(np.float32), rtol=1e-5)
        usable = exptime in ("0", "60")  # a number of seconds, finite and not negative
        assert frame.identity.exptime_s == (float(exptime) if usable else None)


# --- valid files cut short, compressed, corrupted -----------------------------------------------


def reference_files() -> dict[str, tuple[bytes, int]]:
    """Valid files of each layout, with the offset where their image's data ends."""
    rng = np.random.default_rng(3)
    pixels = rng.normal(1000.0, 20.0, (40, 48)).astype(np.float32)
    scaled = fits.PrimaryHDU(pixels.astype(np.float64))
    scaled.scale("int16", bscale=0.5, bzero=900.0)
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(5))])
    layouts = {
        "float32": ([fits.PrimaryHDU(pixels)], 0),
        "uint16": ([fits.PrimaryHDU(pixels.astype(np.uint16))], 0),
        "scaled-int16": ([scaled], 0),
        "float64-extension": ([fits.PrimaryHDU(), fits.ImageHDU(pixels.astype(">f8"))], 1),
        "table-then-image": ([fits.PrimaryHDU(), table, fits.ImageHDU(pixels)], 2),
    }
    for kind, data in [
        ("RICE_1", pixels.astype(np.int16)),
        ("GZIP_1", pixels),
        ("GZIP_2", pixels.astype(np.int32)),
        ("HCOMPRESS_1", pixels.astype(np.int16)),
        ("PLIO_1", (pixels - 900).clip(0, 255).astype(np.int16)),
        ("NOCOMPRESS", pixels),
    ]:
        layouts[kind] = ([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type=kind)], 1)
    files = {}
    for name, (hdus, index) in layouts.items():
        with fits.HDUList(hdus) as hdul:
            stream = io.BytesIO()
            hdul.writeto(stream)
        content = stream.getvalue()
        with fits.open(io.BytesIO(content), disable_image_compression=True) as hdul:
            info = hdul[index].fileinfo()
            files[name] = (content, info["datLoc"] + hdul[index].size)
    return files


REFERENCES = reference_files()
COMPRESSED = [name for name in REFERENCES if name.isupper()]


def reference_pixels(folder: Path, name: str) -> np.ndarray:
    path = folder / f"whole-{name}.fits"
    path.write_bytes(REFERENCES[name][0])
    return read_frame(path).data


@FUZZ
@given(
    name=st.sampled_from(sorted(REFERENCES)), fraction=st.floats(0.0, 1.0), nudge=st.integers(-3, 3)
)
def test_a_file_cut_before_its_data_ends_is_refused_and_after_it_reads(
    folder, name, fraction, nudge
):
    content, data_end = REFERENCES[name]
    cut = min(max(round(fraction * len(content)) + nudge, 0), len(content))
    path = folder / "cut.fits"
    path.write_bytes(content[:cut])

    frame = assert_reads_or_is_refused(path)

    if cut < data_end:
        assert frame is None, f"{name} cut at {cut} of {data_end} data bytes was read"
    else:
        assert frame is not None, f"{name} cut at {cut}, after its data ({data_end}), refused"
        np.testing.assert_array_equal(frame.data, reference_pixels(folder, name))


@FUZZ
@given(
    name=st.sampled_from(COMPRESSED),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=16),
)
def test_a_tile_compressed_file_with_bytes_flipped_reads_or_is_refused(folder, name, flips):
    content = bytearray(REFERENCES[name][0])
    for where, value in flips:
        content[BLOCK + round(where * (len(content) - BLOCK - 1))] = value
    path = folder / "flipped.fz"
    path.write_bytes(bytes(content))
    assert_reads_or_is_refused(path)


@settings(FUZZ, max_examples=60)
@given(name=st.sampled_from(sorted(REFERENCES)), keep=st.floats(0.0, 1.0) | st.just(1.0))
def test_a_gzipped_file_reads_as_its_content_or_is_refused(folder, name, keep):
    packed = gzip.compress(REFERENCES[name][0], mtime=0)
    path = folder / "frame.fits.gz"
    path.write_bytes(packed[: round(keep * len(packed))])

    frame = assert_reads_or_is_refused(path)

    if frame is not None:
        np.testing.assert_array_equal(frame.data, reference_pixels(folder, name))


@FUZZ
@given(
    content=st.binary(max_size=4 * BLOCK)
    | st.binary(max_size=4 * BLOCK).map(lambda tail: b"SIMPLE  =" + tail)
    | st.lists(st.binary(min_size=80, max_size=80), max_size=80).map(
        lambda cards: card("SIMPLE", "T") + b"".join(cards) + card("END")
    ),
    name=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
        min_size=1,
        max_size=40,
    ),
)
def test_random_bytes_under_any_name_are_refused_on_one_line(folder, content, name):
    path = folder / (name + ".fits")
    path.write_bytes(content)
    try:
        assert_reads_or_is_refused(path)
    finally:
        path.unlink()


# --- memory: what a header promises is not what gets allocated ----------------------------------

MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    import numpy as np
    from astropy.io import fits
    from imaging.fits_reader import FrameError, read_frame

    folder = Path(sys.argv[1])

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def header(side, bitpix=-32):
        cards = [("SIMPLE", "T"), ("BITPIX", str(bitpix)), ("NAXIS", "2")]
        cards += [("NAXIS1", str(side)), ("NAXIS2", str(side))]
        text = "".join(f"{k:<8}= {v:>20}".ljust(80) for k, v in cards) + "END".ljust(80)
        return (text + " " * (-len(text) % 2880)).encode()

    def sparse(name, side):
        # The full size on disk without writing it: a hole the kernel reads as zeros, with two
        # different pixels at the start so the frame is not constant.
        path = folder / name
        with open(path, "wb") as stream:
            stream.write(header(side) + np.array([1.0, 2.0], ">f4").tobytes())
            stream.truncate(len(header(side)) + 4 * side * side)
        return path

    baseline = peak_mb()
    results = {}

    def measure(name, path, **options):
        start = time.perf_counter()
        try:
            outcome = {"read": list(read_frame(path, **options).data.shape)}
        except FrameError as exc:
            outcome = {"reason": exc.reason.value, "message": exc.message}
        outcome["seconds"] = time.perf_counter() - start
        outcome["peak_growth_mb"] = peak_mb() - baseline
        results[name] = outcome
        path.unlink()

    # In order of the memory they may take: ru_maxrss only grows, so each growth is an upper
    # bound on what that case alone took.
    for side in (16384, 65536):
        short = folder / f"short-{side}.fits"
        short.write_bytes(header(side) + bytes(100_000))
        measure(f"short-{side}", short)
        short.write_bytes(header(side) + bytes(100_000))
        measure(f"short-{side}-no-limit", short, max_pixels=side * side)
    measure("real-16384", sparse("real-16384.fits", 16384))
    measure("real-8192", sparse("real-8192.fits", 8192))
    bomb = folder / "bomb.fz"
    zeros = np.zeros((4096, 4096), np.int16)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(zeros)]).writeto(bomb)
    results["bomb-bytes"] = bomb.stat().st_size
    measure("bomb-4096", bomb)
    measure("real-7680", sparse("real-7680.fits", 7680))
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def memory_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("fuzz-fits-memory")
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["short-16384", "short-65536"])
@pytest.mark.parametrize("limit", ["", "-no-limit"])
def test_a_header_promising_a_huge_image_in_a_short_file_is_refused_at_once(
    memory_results, case, limit
):
    result = memory_results[case + limit]
    assert result["reason"] == RejectReason.TRUNCATED
    assert "needs" in result["message"] and "the file holds" in result["message"]
    assert result["seconds"] < 1.0
    assert result["peak_growth_mb"] < 200


@pytest.mark.parametrize("side", [16384, 8192])
def test_a_real_frame_above_the_pixel_limit_is_refused_without_reading_it(memory_results, side):
    result = memory_results[f"real-{side}"]
    assert result["reason"] == RejectReason.TOO_LARGE
    assert f"{side}x{side}" in result["message"] and "limit" in result["message"]
    assert result["peak_growth_mb"] < 200
    # The refusal waits for the file's sha256 (3.8 s for the 1 GiB frame here; report F2).
    assert result["seconds"] < 30


def test_a_frame_just_under_the_pixel_limit_is_read_within_a_budget(memory_results):
    result = memory_results["real-7680"]
    assert result["read"] == [7680, 7680]
    float32_mb = 7680 * 7680 * 4 / 2**20
    # The memory-mapped file and the one float32 copy: 450 MB measured here.
    assert result["peak_growth_mb"] < 2.5 * float32_mb
    assert result["seconds"] < 20


def test_a_tile_compressed_bomb_takes_memory_bounded_by_its_pixels_not_its_file(memory_results):
    result = memory_results["bomb-4096"]
    pixels = 4096 * 4096
    assert memory_results["bomb-bytes"] * 100 < pixels * 4  # 311 kB for 64 MiB of float32
    assert result["reason"] == RejectReason.ALL_NAN
    assert result["peak_growth_mb"] * 2**20 < 12 * pixels


def test_a_header_of_seventeen_twenty_digit_axes_does_not_stop_the_intake(tmp_path):
    """Once an OverflowError in `file_completeness` that killed the site's folder watch."""
    cards = [("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "17")]
    cards += [(f"NAXIS{i}", "9" * 20) for i in range(1, 18)]
    text = "".join(f"{k:<8}= {v:>20}".ljust(80) for k, v in cards) + "END".ljust(80)
    poison = tmp_path / "poison.fits"
    poison.write_bytes((text + " " * (-len(text) % 2880)).encode())
    completeness = file_completeness(poison)
    assert completeness is not None and not completeness.complete
    with pytest.raises(FrameError):
        read_frame(poison)

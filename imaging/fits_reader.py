"""Reading one FITS frame from disk: the edge where files become validated pixel arrays.

`read_frame` finds the first HDU holding a 2-D image (primary, extension or tile-compressed
`CompImageHDU`), checks the file against what its headers promise before touching any pixel,
and returns a `Frame`: float32 pixels with BZERO/BSCALE applied and BLANK pixels as NaN, the
header, the WCS when there is one, and the `FrameIdentity` that goes on the wire.

Every problem becomes a `FrameError` carrying a `RejectReason` and one line that names the file
(printably, `imaging.file_names`) and what is wrong with it; no astropy or numpy exception
escapes, even one nobody foresaw (a header card astropy cannot parse, BITPIX = 'abc').
Uncompressed data is read through a memory map and scaled once into a native float32 array
(the one copy), while the file's sha256 is computed in a second thread, since hashing a
4096x4096 frame costs as much as reading it.
"""

import hashlib
import itertools
import math
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from imaging.file_names import printable_name
from imaging.fits_completeness import Completeness, file_completeness
from protos import FrameIdentity, RejectReason, SkyPosition
from protos.frames import FILE_NAME_MAX_CHARS

FITS_MAGIC = b"SIMPLE  ="
FITS_BLOCK_BYTES = 2880
CARD_BYTES = 80
MAX_HEADER_BLOCKS = 1000
SUPPORTED_BITPIX = (8, 16, 32, -32, -64)
MIN_SIDE_PX = 16
SAMPLE_STRIDE_PX = 16
FILTER_MAX_CHARS = 32

_OLD_FITS_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2,3})\s*$")


class FrameError(Exception):
    """A file that cannot be scored: why (`reason`) and a one-line explanation.

    `path` is the real path; the text names it printably, so a file name holding a newline or
    bytes that are not UTF-8 can neither split the line nor break a message.
    """

    def __init__(self, path: Path, reason: RejectReason, message: str) -> None:
        self.path = path
        self.reason = reason
        self.message = printable_name(message)
        super().__init__(f"{printable_name(path)}: {self.message}")


@dataclass(frozen=True)
class Frame:
    """One validated frame: float32 pixels, its header and WCS, and its identity on the wire."""

    path: Path
    data: np.ndarray
    header: fits.Header
    wcs: WCS | None
    identity: FrameIdentity
    pixel_scale_arcsec: float | None
    saturation_adu: float | None


@dataclass(frozen=True)
class _ImageLayout:
    """Where the image is in the file and what its header says about it."""

    index: int
    shape: tuple[int, ...]
    bitpix: int
    compressed: bool


def read_frame(path: Path, *, max_pixels: int = 64_000_000) -> Frame:
    """Read and validate the first 2-D image of a FITS file; raise `FrameError` if unusable."""
    path = Path(path)
    try:
        return _validated_frame(path, max_pixels)
    except FrameError:
        raise
    except Exception as exc:  # astropy raises many types on a malformed header: all reject
        raise _malformed(path, exc) from exc


def _malformed(path: Path, exc: Exception) -> FrameError:
    """A file astropy or numpy failed on in a way no check foresaw, named with the error."""
    if isinstance(exc, OSError) and exc.strerror:
        return _unreadable(path, exc)
    if isinstance(exc, MemoryError):
        return FrameError(path, RejectReason.TOO_LARGE, "too large to read into memory")
    try:  # the headers' structure often names the card at fault better than astropy's error
        structure = file_completeness(path)
    except OSError:
        structure = None
    if structure is not None and structure.verdict is Completeness.NOT_FITS:
        problem = f"malformed FITS header ({structure.detail})"
        return FrameError(path, RejectReason.NOT_FITS, problem)
    if structure is not None and structure.verdict is Completeness.INCOMPLETE:
        return FrameError(path, RejectReason.TRUNCATED, f"truncated: {structure.detail}")
    return FrameError(
        path, RejectReason.NOT_FITS, f"malformed FITS file ({type(exc).__name__}: {exc})"
    )


def _validated_frame(path: Path, max_pixels: int) -> Frame:
    """The checks and the read in order; astropy's own exceptions are left to the caller."""
    size_bytes = _checked_file_size(path)
    with ThreadPoolExecutor(max_workers=1) as hasher:
        sha256 = hasher.submit(sha256_of_file, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            data, header = _read_image(path, size_bytes, max_pixels)
            wcs = _celestial_wcs(header)
        try:
            digest = sha256.result()
        except OSError as exc:
            raise _unreadable(path, exc) from exc
    _check_has_signal(path, data)
    height, width = data.shape
    identity = FrameIdentity(
        file_name=printable_name(path.name, max_chars=FILE_NAME_MAX_CHARS),
        sha256=digest,
        date_obs=_date_obs_utc(header),
        exptime_s=_exptime_s(header),
        filter=_filter_name(header),
        pointing=_pointing(wcs, width, height),
        width_px=width,
        height_px=height,
    )
    return Frame(
        path=path,
        data=data,
        header=header,
        wcs=wcs,
        identity=identity,
        pixel_scale_arcsec=_pixel_scale_arcsec(wcs),
        saturation_adu=_saturation_adu(header),
    )


def _checked_file_size(path: Path) -> int:
    """The file's size in bytes, after checking that it is a readable FITS file."""
    try:
        if not path.exists():
            raise FrameError(path, RejectReason.NOT_A_FILE, "no such file")
        if path.is_dir():
            raise FrameError(path, RejectReason.NOT_A_FILE, "is a directory, not a file")
        if not path.is_file():
            raise FrameError(path, RejectReason.NOT_A_FILE, "is not a regular file")
        with path.open("rb") as stream:
            head = stream.read(len(FITS_MAGIC))
        size_bytes = path.stat().st_size
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if size_bytes == 0:
        raise FrameError(path, RejectReason.EMPTY_FILE, "is empty (0 bytes)")
    if head != FITS_MAGIC:
        raise FrameError(path, RejectReason.NOT_FITS, "is not a FITS file (no SIMPLE card)")
    return size_bytes


def _unreadable(path: Path, exc: OSError) -> FrameError:
    problem = "permission denied" if isinstance(exc, PermissionError) else "cannot be read"
    return FrameError(path, RejectReason.UNREADABLE, f"{problem} ({exc.strerror})")


def sha256_of_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file's bytes."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _read_image(path: Path, size_bytes: int, max_pixels: int) -> tuple[np.ndarray, fits.Header]:
    """The first 2-D image's pixels as native float32, and its header."""
    try:
        hdul = fits.open(
            path,
            memmap=True,
            lazy_load_hdus=True,
            disable_image_compression=True,
            do_not_scale_image_data=True,
        )
    except (OSError, KeyError, ValueError) as exc:
        raise _header_error(path, 0, exc) from exc
    with hdul:
        layout = _find_image(path, hdul, size_bytes)
        _check_layout(path, layout, max_pixels)
        if not layout.compressed:
            hdu = hdul[layout.index]
            return _scaled_float32(hdu.data, hdu.header), hdu.header
    with fits.open(path, memmap=False) as hdul:  # decompression fills memory anyway
        hdu = hdul[layout.index]
        try:
            pixels = np.asarray(hdu.data, dtype=np.float32)
        except Exception as exc:  # the tile decompressor raises its own exception types
            raise FrameError(
                path, RejectReason.UNREADABLE, f"compressed image cannot be decoded ({exc})"
            ) from exc
        return pixels.reshape(pixels.shape[-2:]), hdu.header


def _find_image(path: Path, hdul: fits.HDUList, size_bytes: int) -> _ImageLayout:
    """The first HDU with a 2-D image; checks that each HDU up to it is complete on disk."""
    other_dimensions: _ImageLayout | None = None
    header_offset = 0
    for index in itertools.count():
        try:
            hdu = hdul[index]
        except IndexError:
            break
        except (OSError, KeyError, ValueError) as exc:
            raise _header_error(path, header_offset, exc) from exc
        info = hdu.fileinfo()
        data_end = info["datLoc"] + hdu.size
        if size_bytes < data_end:
            raise FrameError(
                path,
                RejectReason.TRUNCATED,
                f"truncated: HDU {index} needs {data_end} bytes, the file holds {size_bytes}",
            )
        header_offset = info["datLoc"] + info["datSpan"]
        layout = _image_layout(path, index, hdu.header)
        if layout is None:
            continue
        if len(layout.shape) >= 2 and all(n == 1 for n in layout.shape[:-2]):
            return layout
        other_dimensions = other_dimensions or layout
    if other_dimensions is not None:
        dims = "x".join(str(n) for n in reversed(other_dimensions.shape))
        raise FrameError(
            path,
            RejectReason.BAD_DIMENSIONS,
            f"holds a {len(other_dimensions.shape)}-D array ({dims}), not a 2-D image",
        )
    raise FrameError(path, RejectReason.NO_IMAGE_DATA, "holds no image data (header or table only)")


def _header_error(path: Path, offset: int, exc: Exception) -> FrameError:
    """A header astropy cannot parse: cut off by the end of the file, or malformed."""
    if _header_is_complete(path, offset):
        return FrameError(
            path, RejectReason.NOT_FITS, f"malformed FITS header at byte {offset} ({exc})"
        )
    return FrameError(
        path, RejectReason.TRUNCATED, f"truncated: the file ends inside the header at byte {offset}"
    )


def _header_is_complete(path: Path, offset: int) -> bool:
    """Whether the header at `offset` has an END card and the file holds its whole last block."""
    with path.open("rb") as stream:
        stream.seek(offset)
        for _ in range(MAX_HEADER_BLOCKS):
            block = stream.read(FITS_BLOCK_BYTES)
            cards = (
                block[start : start + CARD_BYTES] for start in range(0, len(block), CARD_BYTES)
            )
            if any(card.rstrip() == b"END" for card in cards):
                return len(block) == FITS_BLOCK_BYTES
            if len(block) < FITS_BLOCK_BYTES:
                return False
    return True


def _image_layout(path: Path, index: int, header: fits.Header) -> _ImageLayout | None:
    """The image an HDU header describes, or None when the HDU holds no image."""
    compressed = bool(header.get("ZIMAGE", False))
    if compressed:
        prefix = "Z"
    elif header.get("XTENSION", "IMAGE").strip() == "IMAGE":
        prefix = ""
    else:
        return None
    naxis = _header_integer(path, index, header, f"{prefix}NAXIS", default=0)
    # FITS lists axes fastest first; numpy shape is slowest first.
    shape = tuple(
        _header_integer(path, index, header, f"{prefix}NAXIS{axis}") for axis in range(naxis, 0, -1)
    )
    bitpix = _header_integer(path, index, header, f"{prefix}BITPIX")
    return _ImageLayout(index, shape, bitpix, compressed) if naxis else None


def _header_integer(
    path: Path, index: int, header: fits.Header, keyword: str, default: int | None = None
) -> int:
    """An integer card of HDU `index`; a missing or non-integer one is a malformed header."""
    value = header.get(keyword, default)
    if value is None:
        problem = f"no {keyword} card"
    else:
        try:
            return int(value)
        except (ValueError, TypeError):
            problem = f"{keyword} = {value!r} is not an integer"
    raise FrameError(path, RejectReason.NOT_FITS, f"malformed header in HDU {index} ({problem})")


def _check_layout(path: Path, layout: _ImageLayout, max_pixels: int) -> None:
    height, width = layout.shape[-2:]
    if layout.bitpix not in SUPPORTED_BITPIX:
        raise FrameError(
            path,
            RejectReason.UNSUPPORTED_BITPIX,
            f"BITPIX {layout.bitpix} is not supported (expected one of {SUPPORTED_BITPIX})",
        )
    if min(height, width) < MIN_SIDE_PX:
        raise FrameError(
            path,
            RejectReason.BAD_DIMENSIONS,
            f"image is {width}x{height} px; each side must be at least {MIN_SIDE_PX} px",
        )
    if height * width > max_pixels:
        raise FrameError(
            path,
            RejectReason.TOO_LARGE,
            f"image is {width}x{height} = {height * width} px, above the {max_pixels} px limit",
        )


def _scaled_float32(raw: np.ndarray, header: fits.Header) -> np.ndarray:
    """Physical values (BSCALE * raw + BZERO, BLANK as NaN) as one native float32 copy."""
    raw = raw.reshape(raw.shape[-2:])
    pixels = raw.astype(np.float32)
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    if bscale != 1.0:
        pixels *= np.float32(bscale)
    if bzero != 0.0:
        pixels += np.float32(bzero)
    blank = header.get("BLANK")
    if blank is not None and raw.dtype.kind in "iu":
        pixels[raw == blank] = np.nan
    return pixels


def _check_has_signal(path: Path, data: np.ndarray) -> None:
    """Reject frames that are all NaN or constant; a strided sample usually settles it."""
    sample = data[::SAMPLE_STRIDE_PX, ::SAMPLE_STRIDE_PX]
    finite = sample[np.isfinite(sample)]
    if finite.size and finite.min() < finite.max():
        return
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise FrameError(path, RejectReason.ALL_NAN, "every pixel is NaN or infinite")
    if finite.min() == finite.max():
        raise FrameError(
            path, RejectReason.ALL_NAN, f"every finite pixel has the same value {finite.min():g}"
        )


def _celestial_wcs(header: fits.Header) -> WCS | None:
    """The celestial WCS of the image, or None when the header has none or a broken one."""
    try:
        wcs = WCS(header)
    except (ValueError, KeyError, MemoryError):
        return None
    return wcs.celestial if wcs.has_celestial else None


def _pixel_scale_arcsec(wcs: WCS | None) -> float | None:
    if wcs is None:
        return None
    scale_deg = float(np.mean(proj_plane_pixel_scales(wcs)))
    return scale_deg * 3600.0 if math.isfinite(scale_deg) and scale_deg > 0 else None


def _pointing(wcs: WCS | None, width: int, height: int) -> SkyPosition | None:
    """The ICRS position of the frame centre."""
    if wcs is None:
        return None
    try:
        centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2).icrs
    except (ValueError, AttributeError):
        return None
    ra_deg, dec_deg = float(centre.ra.deg) % 360.0, float(centre.dec.deg)
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)):
        return None
    return SkyPosition(ra_deg=ra_deg, dec_deg=dec_deg)


def _date_obs_utc(header: fits.Header) -> datetime | None:
    """The start of the exposure in UTC, from DATE-OBS (with TIME-OBS or UT) or MJD-OBS.

    A DATE-OBS without a time of day is used alone only when neither TIME-OBS, UT nor
    MJD-OBS says more; the pre-2000 DD/MM/YY form is understood.
    """
    date = header.get("DATE-OBS")
    date = date.strip() if isinstance(date, str) else ""
    old_style = _OLD_FITS_DATE.match(date)
    if old_style:
        day, month, year = (int(part) for part in old_style.groups())
        # Pre-2000 FITS dates are DD/MM/YY in the 1900s; some writers wrote 2002 as 102.
        date = f"{1900 + year:04d}-{month:02d}-{day:02d}"
    clock = header.get("TIME-OBS") or header.get("UT")
    mjd = header.get("MJD-OBS")
    candidates: list[tuple[str | float, str]] = []
    if date and "T" not in date and isinstance(clock, str) and clock.strip():
        candidates.append((f"{date}T{clock.strip()}", "isot"))
    if date and "T" in date:
        candidates.append((date, "isot"))
    if isinstance(mjd, int | float) and not isinstance(mjd, bool):
        candidates.append((float(mjd), "mjd"))
    if date:
        candidates.append((date, "iso"))
    for value, time_format in candidates:
        try:
            return Time(value, format=time_format, scale="utc").to_datetime(timezone=UTC)
        except ValueError:
            continue
    return None


def _exptime_s(header: fits.Header) -> float | None:
    value = header.get("EXPTIME", header.get("EXPOSURE"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _filter_name(header: fits.Header) -> str | None:
    value = header.get("FILTER")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:FILTER_MAX_CHARS].strip()


def _saturation_adu(header: fits.Header) -> float | None:
    """SATURATE from the header, else the largest value an integer BITPIX can hold."""
    value = header.get("SATURATE")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    bitpix = int(header.get("ZBITPIX", header.get("BITPIX", -32)))
    if bitpix < 0:
        return None
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    largest_raw = 255 if bitpix == 8 else 2 ** (bitpix - 1) - 1
    return bzero + bscale * largest_raw

"""Reading one FITS frame from disk: the edge where files become validated pixel arrays.

`read_frame` finds the first HDU holding a 2-D image (primary, extension or tile-compressed
`CompImageHDU`), checks the file against what its headers promise before touching any pixel,
and returns a `Frame`: float32 pixels with BZERO/BSCALE applied and BLANK pixels as NaN, the
header, the WCS when there is one, and the `FrameIdentity` that goes on the wire (what the
header says, its time, filter, pointing and saturation, is read by `imaging.fits_header`).

Every problem becomes a `FrameError` carrying a `RejectReason` and one line that names the file
(printably, `imaging.file_names`) and what is wrong with it; no astropy or numpy exception
escapes, even one nobody foresaw (a header card astropy cannot parse, BITPIX = 'abc').
Uncompressed data is read through a memory map and scaled once into a native float32 array
(the one copy), while the file's sha256 is computed in a second thread, since hashing a
4096x4096 frame costs as much as reading it. A whole file compressed with gzip or bzip2
(`.fits.gz`, `.fits.bz2`, known by its first bytes) is decompressed into memory first, within a
bound (`imaging.fits_source`), and read the same way; its sha256 is the file's on disk.
"""

import hashlib
import itertools
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from imaging.file_names import printable_name
from imaging.fits_completeness import Completeness, header_is_complete
from imaging.fits_header import (
    celestial_wcs,
    date_obs_utc,
    exptime_s,
    filter_name,
    pixel_scale_arcsec,
    pointing,
    saturation_adu,
)
from imaging.fits_source import (
    Compression,
    DecompressionError,
    FitsSource,
    compression_of,
    decompressed_bytes,
)
from imaging.overscan import corrected_for_overscan
from protos import FrameIdentity, RejectReason
from protos.frames import FILE_NAME_MAX_CHARS

FITS_MAGIC = b"SIMPLE  ="
SUPPORTED_BITPIX = (8, 16, 32, -32, -64)
MIN_SIDE_PX = 16
SAMPLE_STRIDE_PX = 16
HEADER_ROOM_BYTES = 1 << 20
"""Bytes allowed beyond the largest image's pixels when decompressing a whole file: headers and
small extensions. The largest image is `max_pixels` of 8 bytes (BITPIX -64)."""


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
    """Read and validate the first 2-D image of a FITS file (gzip or bzip2 compressed, or not);
    raise `FrameError` if unusable."""
    path = Path(path)
    source: FitsSource | None = None
    try:
        source = _checked_source(path, max_pixels)
        return _validated_frame(source, max_pixels)
    except FrameError:
        raise
    except Exception as exc:  # astropy raises many types on a malformed header: all reject
        raise _malformed(source or FitsSource(path, 0), exc) from exc


def _malformed(source: FitsSource, exc: Exception) -> FrameError:
    """A file astropy or numpy failed on in a way no check foresaw, named with the error."""
    path = source.path
    if isinstance(exc, OSError) and exc.strerror:
        return _unreadable(path, exc)
    if isinstance(exc, MemoryError):
        return FrameError(path, RejectReason.TOO_LARGE, "too large to read into memory")
    try:  # the headers' structure often names the card at fault better than astropy's error
        structure = source.completeness()
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


def _validated_frame(source: FitsSource, max_pixels: int) -> Frame:
    """The checks and the read in order; astropy's own exceptions are left to the caller."""
    path = source.path
    with ThreadPoolExecutor(max_workers=1) as hasher:
        sha256 = hasher.submit(sha256_of_file, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            data, header = _read_image(source, max_pixels)
            data, header, saturation = corrected_for_overscan(data, header, saturation_adu(header))
            wcs = celestial_wcs(header)
        try:
            digest = sha256.result()
        except OSError as exc:
            raise _unreadable(path, exc) from exc
    _check_has_signal(path, data)
    height, width = data.shape
    identity = FrameIdentity(
        file_name=printable_name(path.name, max_chars=FILE_NAME_MAX_CHARS),
        sha256=digest,
        date_obs=date_obs_utc(header),
        exptime_s=exptime_s(header),
        filter=filter_name(header),
        pointing=pointing(wcs, width, height),
        width_px=width,
        height_px=height,
    )
    return Frame(
        path=path,
        data=data,
        header=header,
        wcs=wcs,
        identity=identity,
        pixel_scale_arcsec=pixel_scale_arcsec(wcs),
        saturation_adu=saturation,
    )


def _checked_source(path: Path, max_pixels: int) -> FitsSource:
    """The file's FITS bytes, after checking that it is a readable FITS file (decompressed
    first when it is a compressed one)."""
    size_bytes, compression = _checked_file_size(path)
    if compression is None:
        return FitsSource(path, size_bytes)
    limit = max_pixels * 8 + HEADER_ROOM_BYTES
    try:
        content = decompressed_bytes(path, compression, limit_bytes=limit)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    except DecompressionError as exc:
        reason = {"truncated": RejectReason.TRUNCATED, "too_large": RejectReason.TOO_LARGE}
        message = f"truncated: {exc}" if exc.problem == "truncated" else str(exc)
        raise FrameError(path, reason.get(exc.problem, RejectReason.NOT_FITS), message) from exc
    if not content:
        raise FrameError(path, RejectReason.EMPTY_FILE, f"is empty once {compression}-decompressed")
    if not content.startswith(FITS_MAGIC):
        raise FrameError(
            path, RejectReason.NOT_FITS, f"is {compression}-compressed but not a FITS file inside"
        )
    return FitsSource(path, len(content), content)


def _checked_file_size(path: Path) -> tuple[int, Compression | None]:
    """The file's size in bytes and its whole-file compression, after checking that it is a
    readable FITS file or a compressed file."""
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
    compression = compression_of(head)
    if head != FITS_MAGIC and compression is None:
        raise FrameError(path, RejectReason.NOT_FITS, "is not a FITS file (no SIMPLE card)")
    return size_bytes, compression


def _unreadable(path: Path, exc: OSError) -> FrameError:
    problem = "permission denied" if isinstance(exc, PermissionError) else "cannot be read"
    return FrameError(path, RejectReason.UNREADABLE, f"{problem} ({exc.strerror})")


def sha256_of_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file's bytes."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _read_image(source: FitsSource, max_pixels: int) -> tuple[np.ndarray, fits.Header]:
    """The first 2-D image's pixels as native float32, and its header."""
    path = source.path
    try:
        hdul = fits.open(
            source.open(),
            memmap=source.content is None,
            lazy_load_hdus=True,
            disable_image_compression=True,
            do_not_scale_image_data=True,
        )
    except (OSError, KeyError, ValueError) as exc:
        raise _header_error(source, 0, exc) from exc
    with hdul:
        layout = _find_image(source, hdul)
        _check_layout(path, layout, max_pixels)
        if not layout.compressed:
            hdu = hdul[layout.index]
            return _scaled_float32(hdu.data, hdu.header), hdu.header
    with fits.open(source.open(), memmap=False) as hdul:  # decompression fills memory anyway
        hdu = hdul[layout.index]
        try:
            pixels = np.asarray(hdu.data, dtype=np.float32)
        except Exception as exc:  # the tile decompressor raises its own exception types
            raise FrameError(
                path, RejectReason.UNREADABLE, f"compressed image cannot be decoded ({exc})"
            ) from exc
        return pixels.reshape(pixels.shape[-2:]), hdu.header


def _find_image(source: FitsSource, hdul: fits.HDUList) -> _ImageLayout:
    """The first HDU with a 2-D image; checks that each HDU up to it is complete on disk."""
    path, size_bytes = source.path, source.size_bytes
    other_dimensions: _ImageLayout | None = None
    header_offset = 0
    for index in itertools.count():
        try:
            hdu = hdul[index]
        except IndexError:
            break
        except (OSError, KeyError, ValueError) as exc:
            raise _header_error(source, header_offset, exc) from exc
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


def _header_error(source: FitsSource, offset: int, exc: Exception) -> FrameError:
    """A header astropy cannot parse: cut off by the end of the file, or malformed."""
    path = source.path
    with source.stream() as stream:
        complete = header_is_complete(stream, offset)
    if complete:
        return FrameError(
            path, RejectReason.NOT_FITS, f"malformed FITS header at byte {offset} ({exc})"
        )
    return FrameError(
        path, RejectReason.TRUNCATED, f"truncated: the file ends inside the header at byte {offset}"
    )


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

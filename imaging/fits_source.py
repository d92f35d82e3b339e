"""Where a frame's FITS bytes come from: the file itself, or a whole-file compressed FITS
(`.fits.gz`, `.fits.bz2`) recognised by its first bytes and decompressed within a bound.

Archives and some camera software gzip or bzip2 a whole FITS file; astropy reads both through
a file object. The reader decompresses such a file into memory once (it cannot be memory
mapped) and reads the bytes as it reads any FITS file; the limit on decompressed bytes keeps a
small file that inflates without end (a decompression bomb) from filling the memory. A stream
that stops early is a truncated file. Tile-compressed FITS (`.fz`, a `CompImageHDU`) is FITS
already and needs nothing of this.
"""

import bz2
import gzip
import io
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from imaging.fits_completeness import (
    BZIP2_MAGIC,
    GZIP_MAGIC,
    FitsCompleteness,
    file_completeness,
    fits_completeness,
)

CHUNK_BYTES = 1 << 20


class Compression(StrEnum):
    """How a whole file is compressed, known by its first bytes."""

    GZIP = "gzip"
    BZIP2 = "bzip2"


MAGIC = {Compression.GZIP: GZIP_MAGIC, Compression.BZIP2: BZIP2_MAGIC}


class DecompressionError(Exception):
    """A compressed stream that cannot be read whole: `truncated`, `too_large` or corrupt."""

    def __init__(self, problem: str, message: str) -> None:
        self.problem = problem
        super().__init__(message)


@dataclass(frozen=True)
class FitsSource:
    """The FITS bytes to read: the file itself, or its content decompressed into memory."""

    path: Path
    size_bytes: int
    """The size of the FITS bytes (decompressed, for a compressed file)."""
    content: bytes | None = None

    def open(self) -> Path | io.BytesIO:
        """What `fits.open` reads: the path (memory mapped) or a fresh stream over the bytes."""
        return self.path if self.content is None else io.BytesIO(self.content)

    def stream(self) -> io.BufferedReader | io.BytesIO:
        """The bytes as a binary stream (close it after use)."""
        return self.path.open("rb") if self.content is None else io.BytesIO(self.content)

    def completeness(self) -> FitsCompleteness:
        """What the headers of these bytes say (OSError if the file cannot be read)."""
        if self.content is None:
            return file_completeness(self.path)
        return fits_completeness(io.BytesIO(self.content), len(self.content))


def compression_of(head: bytes) -> Compression | None:
    """The compression a file's first bytes announce, or None for anything else."""
    for compression, magic in MAGIC.items():
        if head.startswith(magic):
            return compression
    return None


def decompressed_bytes(path: Path, compression: Compression, *, limit_bytes: int) -> bytes:
    """The whole decompressed content of `path`; raises `DecompressionError` when the stream
    stops early (`truncated`), inflates beyond `limit_bytes` (`too_large`) or is corrupt, and
    OSError when the file cannot be read. Read a megabyte at a time, so a bomb is stopped
    within a megabyte of the limit."""
    opener = gzip.open if compression is Compression.GZIP else bz2.open
    output = io.BytesIO()
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                output.write(chunk)
                if output.tell() > limit_bytes:
                    raise DecompressionError(
                        "too_large", f"decompresses to more than {limit_bytes} bytes"
                    )
    except EOFError as exc:
        raise DecompressionError(
            "truncated", f"the {compression} stream ends before its end marker"
        ) from exc
    except (zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise DecompressionError("corrupt", f"the {compression} stream is corrupt ({exc})") from exc
    except OSError as exc:
        if exc.strerror:  # the file system's error: the caller says it cannot be read
            raise
        raise DecompressionError("corrupt", f"the {compression} stream is corrupt ({exc})") from exc
    return output.getvalue()

"""Whether a FITS file on disk is whole, judged from its headers alone.

A FITS file is a sequence of HDUs: a header of 2880-byte blocks of 80-character cards ending
with the END card, then |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn) bytes of data
(none when NAXIS = 0), padded to a whole block. `fits_completeness` walks the headers, seeking
over the data (pixels are never read), and says whether the file holds everything its headers
promise. The folder watch uses it to wait for a camera that writes a frame slowly; the reader
uses it to name which structural card of a malformed header is wrong.

A file is complete when the primary HDU and every header that has started are whole and their
data is there. The last HDU's padding may be missing (some writers omit it; astropy reads such
a file), but a file that stops inside the padding is still being written. A primary HDU
without data that announces extensions (EXTEND = T), with nothing after it, is waiting for its
first extension (a tile-compressed frame written header first). Bytes after the last HDU that
do not begin an extension header are left for the reader to judge.

A whole file compressed with gzip or bzip2 (`.fits.gz`, `.fits.bz2`) shows its end only to a
decompressor that reads all of it, too slow to do on the watcher's event loop for every file:
such a file is judged complete once settled (its size and mtime unchanged), and the reader
rejects one cut short as truncated. Tile-compressed files (`.fz`) are FITS and judged as such.
"""

import math
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

FITS_BLOCK_BYTES = 2880
CARD_BYTES = 80
PRIMARY_MAGIC = b"SIMPLE  ="
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
EXTENSION_MAGIC = b"XTENSION="
MAX_HEADER_BLOCKS = 1000
"""Blocks one header may span (36,000 cards) before it is called not FITS; real headers take
one to a few blocks, so this only bounds what garbage can make us read."""
MAX_HDUS = 1000
"""HDUs walked at most; a mosaic camera writes tens. Beyond, the rest is left to the reader,
which bounds the headers read on the event loop to a few MB in the worst case."""


class Completeness(StrEnum):
    """What the headers say about the file as it is now."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    NOT_FITS = "not_fits"
    """Not structured as FITS (or structured wrongly): the reader will say why."""


@dataclass(frozen=True)
class FitsCompleteness:
    """The verdict, the file's size, and for an incomplete file how much it must hold."""

    verdict: Completeness
    size_bytes: int
    needed_bytes: int | None = None
    """INCOMPLETE: the file must hold at least this many bytes (more may follow)."""
    detail: str = ""
    """One line: what is missing, or what is not FITS about the file."""

    @property
    def complete(self) -> bool:
        return self.verdict is Completeness.COMPLETE


class _NotFits(Exception):
    """A header that cannot be walked: not FITS, or a structural card that is wrong."""


@dataclass(frozen=True)
class _Header:
    """One header as far as the file holds it: its end offset and its structural cards."""

    end: int | None
    """Offset just past the header's last block; None when the file stops inside it."""
    cards: dict[str, str]


def fits_completeness(stream: BinaryIO, size_bytes: int) -> FitsCompleteness:
    """Judge a FITS file from its headers: `stream` is the file opened for binary reading,
    `size_bytes` its size now. Reads only headers; raises OSError if reading fails."""
    offset = 0
    for index in range(MAX_HDUS):
        if index > 0 and offset >= size_bytes:
            return FitsCompleteness(Completeness.COMPLETE, size_bytes)
        magic = PRIMARY_MAGIC if index == 0 else EXTENSION_MAGIC
        stream.seek(offset)
        start = stream.read(len(magic))
        if start != magic:
            if magic.startswith(start):  # the first bytes of the header, the rest to come
                return _incomplete(size_bytes, offset + FITS_BLOCK_BYTES, f"HDU {index} header")
            if index == 0 and start.startswith((GZIP_MAGIC, BZIP2_MAGIC)):
                detail = "compressed whole: judged complete once settled"
                return FitsCompleteness(Completeness.COMPLETE, size_bytes, detail=detail)
            if index == 0:
                return _not_fits(size_bytes, "no SIMPLE card at the start")
            return FitsCompleteness(Completeness.COMPLETE, size_bytes)  # trailing bytes
        try:
            header = _read_header(stream, offset, size_bytes)
            if header.end is None:
                needed = offset + FITS_BLOCK_BYTES * (1 + (size_bytes - offset) // FITS_BLOCK_BYTES)
                return _incomplete(size_bytes, needed, f"HDU {index} header")
            data_bytes = _data_bytes(header.cards, primary=index == 0)
        except _NotFits as exc:
            return _not_fits(size_bytes, f"HDU {index}: {exc}")
        data_end = header.end + data_bytes
        padded_end = header.end + FITS_BLOCK_BYTES * -(
            -data_bytes // FITS_BLOCK_BYTES
        )  # exact for any size
        if size_bytes < data_end:
            return _incomplete(size_bytes, data_end, f"HDU {index} data")
        if size_bytes == data_end and data_bytes > 0:
            return FitsCompleteness(Completeness.COMPLETE, size_bytes)  # final padding omitted
        if size_bytes < padded_end:
            return _incomplete(size_bytes, padded_end, f"HDU {index} padding")
        if index == 0 and size_bytes == padded_end and _awaits_extension(header.cards):
            return _incomplete(size_bytes, padded_end + FITS_BLOCK_BYTES, "the first extension")
        offset = padded_end
    return FitsCompleteness(Completeness.COMPLETE, size_bytes)  # the reader walks the rest


def file_completeness(path: Path) -> FitsCompleteness:
    """Judge the file at `path` (see `fits_completeness`); raises OSError if it cannot be
    read."""
    with open(path, "rb") as stream:
        return fits_completeness(stream, os.fstat(stream.fileno()).st_size)


def header_is_complete(stream: BinaryIO, offset: int) -> bool:
    """Whether the header at `offset` has an END card and the stream holds its whole last
    block (a header astropy failed on is then malformed, not cut off)."""
    stream.seek(offset)
    for _ in range(MAX_HEADER_BLOCKS):
        block = stream.read(FITS_BLOCK_BYTES)
        cards = (block[start : start + CARD_BYTES] for start in range(0, len(block), CARD_BYTES))
        if any(card.rstrip() == b"END" for card in cards):
            return len(block) == FITS_BLOCK_BYTES
        if len(block) < FITS_BLOCK_BYTES:
            return False
    return True


def _incomplete(size_bytes: int, needed_bytes: int, part: str) -> FitsCompleteness:
    return FitsCompleteness(
        Completeness.INCOMPLETE,
        size_bytes,
        needed_bytes,
        f"ends inside {part}: expected at least {needed_bytes} bytes, has {size_bytes}",
    )


def _not_fits(size_bytes: int, detail: str) -> FitsCompleteness:
    return FitsCompleteness(Completeness.NOT_FITS, size_bytes, detail=detail)


def _read_header(stream: BinaryIO, offset: int, size_bytes: int) -> _Header:
    """The header at `offset`: its structural cards, and where it ends if the file holds it."""
    cards: dict[str, str] = {}
    stream.seek(offset)
    for block_index in range(MAX_HEADER_BLOCKS):
        block = stream.read(FITS_BLOCK_BYTES)
        for start in range(0, len(block) - CARD_BYTES + 1, CARD_BYTES):
            card = block[start : start + CARD_BYTES]
            keyword = card[:8].rstrip().decode("ascii", "replace")
            if keyword == "END":
                if len(block) < FITS_BLOCK_BYTES:
                    return _Header(None, cards)
                return _Header(offset + (block_index + 1) * FITS_BLOCK_BYTES, cards)
            if card[8:10] == b"= " and keyword not in cards:
                cards[keyword] = card[10:].decode("ascii", "replace")
        if len(block) < FITS_BLOCK_BYTES:
            return _Header(None, cards)
    raise _NotFits(f"no END card in {MAX_HEADER_BLOCKS} header blocks")


def _data_bytes(cards: dict[str, str], *, primary: bool) -> int:
    """The size of the HDU's data in bytes, without padding, from its structural cards."""
    bitpix = _integer(cards, "BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise _NotFits(f"BITPIX = {bitpix} is not a FITS data type")
    naxis = _integer(cards, "NAXIS")
    if not 0 <= naxis <= 999:
        raise _NotFits(f"NAXIS = {naxis} is out of range")
    if naxis == 0:
        return 0
    axes = [_integer(cards, f"NAXIS{axis}") for axis in range(1, naxis + 1)]
    if any(n < 0 for n in axes):
        raise _NotFits(f"negative axis length in {axes}")
    if primary and axes[0] == 0 and _logical(cards, "GROUPS"):
        axes = axes[1:]  # random groups: NAXIS1 = 0 marks the form
    pcount = _integer(cards, "PCOUNT", default=0)
    gcount = _integer(cards, "GCOUNT", default=1)
    if pcount < 0 or gcount < 0:
        raise _NotFits(f"PCOUNT = {pcount}, GCOUNT = {gcount}: negative")
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def _awaits_extension(cards: dict[str, str]) -> bool:
    return _integer(cards, "NAXIS") == 0 and _logical(cards, "EXTEND")


def _integer(cards: dict[str, str], keyword: str, default: int | None = None) -> int:
    text = cards.get(keyword)
    if text is None:
        if default is None:
            raise _NotFits(f"no {keyword} card")
        return default
    value = text.split("/", 1)[0].strip()
    try:
        return int(value)
    except ValueError:
        raise _NotFits(f"{keyword} = {value} is not an integer") from None


def _logical(cards: dict[str, str], keyword: str) -> bool:
    return cards.get(keyword, "").split("/", 1)[0].strip() == "T"

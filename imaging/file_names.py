"""File names as they may be shown: one printable line, whatever bytes the camera wrote.

A POSIX file name is any bytes but `/` and NUL. Python gives names that are not valid UTF-8 as
text holding surrogate escapes, which cannot be encoded into a message, a SQLite row or a log
record; and a name may hold a newline, a tab or an escape sequence that would split or forge a
log line. `printable_name` is the name every message and log line uses; the real path (with its
surrogate escapes) is still what is opened and moved.
"""

import os

ELLIPSIS = "…"
"""Ends a name cut to `max_chars` (a message takes `protos.frames.FILE_NAME_MAX_CHARS`)."""

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable_name(name: str | bytes | os.PathLike[str], *, max_chars: int | None = None) -> str:
    """`name` (a file name, a path, or text naming one) as printable text on one line.

    Bytes that are not UTF-8 become `\\xNN` (as `bytes.decode(errors="backslashreplace")`),
    and characters Python does not call printable (controls, line and paragraph separators,
    format characters) become `\\n`, `\\r`, `\\t`, `\\xNN` or `\\uNNNN`. A name that is
    already printable comes back unchanged, and so does any result passed in again. A
    literal backslash is left as it is, so `bad_\\xff.fits` typed by hand reads the same as the
    byte 0xff; the message ids of rejections are the only place where that could matter, and
    two such files would need the same reject reason at the same site.

    >>> printable_name(b"bad_\\xff.fits")
    'bad_\\\\xff.fits'
    >>> printable_name("x\\nALERT bad frame.fits")
    'x\\\\nALERT bad frame.fits'
    """
    text = os.fspath(name)
    if isinstance(text, str):
        if text.isprintable() and (max_chars is None or len(text) <= max_chars):
            return text  # the common case, without a round trip through bytes
        try:
            raw = os.fsencode(text)
        except UnicodeEncodeError:  # a surrogate that no file name decoding produced
            raw = text.encode("utf-8", "backslashreplace")
    else:
        raw = text
    decoded = raw.decode("utf-8", "backslashreplace")
    shown = "".join(ch if ch.isprintable() else _escaped(ch) for ch in decoded)
    if max_chars is not None and len(shown) > max_chars:
        shown = shown[: max_chars - len(ELLIPSIS)] + ELLIPSIS
    return shown


def _escaped(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

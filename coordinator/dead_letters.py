"""Refused messages: whether a store failure is the message's fault, and the dead letter that
keeps a refused message with why it was refused.

A dead letter fits under the server's max payload by construction: a copy of the message with
its error in the headers when that fits, else the first bytes of the message and the stream and
sequence where the original stays (`FLEET` keeps it for its max age). Its headers:
`Skyfleet-Error` (one ASCII line), `Skyfleet-Subject`, `Skyfleet-Refused-By` (`decoder` or
`store`), `Skyfleet-Stream`, `Skyfleet-Sequence`, `Skyfleet-Size`, `Skyfleet-Payload` (`copy` or
`prefix`), and `Nats-Msg-Id` so that a dead letter published twice is kept once.
"""

from nats.aio.msg import Msg
from sqlalchemy.exc import StatementError

from fleetbus.client import MSG_ID_HEADER
from protos import MessageDecodeError

ERROR_HEADER = "Skyfleet-Error"
SUBJECT_HEADER = "Skyfleet-Subject"
REFUSED_BY_HEADER = "Skyfleet-Refused-By"
"""`decoder` (not a valid message of its kind) or `store` (the database refused its data)."""
STREAM_HEADER = "Skyfleet-Stream"
SEQUENCE_HEADER = "Skyfleet-Sequence"
"""Where the original message stays (its stream's max age: 30 days for FLEET)."""
SIZE_HEADER = "Skyfleet-Size"
"""The original payload's size in bytes."""
PAYLOAD_HEADER = "Skyfleet-Payload"
"""`copy`: the dead letter's payload is the original's; `prefix`: only its first bytes, the
original being too big to copy (fetch it by stream and sequence)."""

ERROR_MAX_CHARS = 4000
"""The error kept in a dead letter's header: the first fields of a decode error or the
database's message. A message with thousands of unknown keys has an error of megabytes."""
LOGGED_ERROR_MAX_CHARS = 500
"""The error as logged: enough to say what was wrong, one line per refused message."""
DEAD_LETTER_PREFIX_BYTES = 4096
"""Payload kept in a dead letter by reference: the message's envelope (kind, id, site, time come
first in its JSON) and its first fields, enough to see what it was without fetching it."""
DEAD_LETTER_MARGIN_BYTES = 1024
"""Kept free under the server's max payload (headers and payload together), against any
difference between our count of the header block and the client's."""
_HEADER_BLOCK_BYTES = len(b"NATS/1.0\r\n\r\n")
_HEADER_LINE_BYTES = len(b": \r\n")

DATA_ERRORS = frozenset({"IntegrityError", "DataError"})
"""PEP 249 errors that mean the database refused the values themselves (a constraint, a value
out of range or too long). Matched by class name, so SQLAlchemy's wrappers and the drivers' own
errors (the PostgreSQL COPY path talks to psycopg directly) are judged alike."""


def _database_cause(error: BaseException) -> BaseException:
    """The driver's (or a bind processor's) own error inside SQLAlchemy's wrapper."""
    if isinstance(error, StatementError) and error.orig is not None:
        return error.orig
    return error


def refused_for_its_data(error: BaseException) -> bool:
    """Whether a failed write failed because of the values written: a PEP 249 IntegrityError or
    DataError, or a ValueError, TypeError or ArithmeticError (a Python int no SQLite INTEGER
    holds) from the driver or a bind processor. Anything else is not taken for the messages'
    fault and is retried: OperationalError and InterfaceError (the database unreachable, locked,
    restarting, a deadlock or serialization failure), timeouts, broken connections, and errors
    that say nothing about the data (a permission, a missing table)."""
    cause = _database_cause(error)
    names = {cls.__name__ for cls in (*type(error).__mro__, *type(cause).__mro__)}
    return bool(names & DATA_ERRORS) or isinstance(cause, ValueError | TypeError | ArithmeticError)


def error_text(error: BaseException, max_chars: int) -> str:
    """What the decoder or the database said, as one line of ASCII (so that characters are
    bytes) of at most `max_chars`, without SQLAlchemy's statement and parameters (those repeat
    the whole message)."""
    cause = _database_cause(error)
    text = (
        str(cause) if isinstance(cause, MessageDecodeError) else f"{type(cause).__name__}: {cause}"
    )
    return _one_line(text, max_chars)


def _one_line(text: str, max_chars: int) -> str:
    ascii_text = text[: 2 * max_chars].encode("ascii", "backslashreplace").decode("ascii")
    line = " ".join(ascii_text.split())
    return line if len(line) <= max_chars else line[: max_chars - 3] + "..."


def header_block_bytes(headers: dict[str, str]) -> int:
    """The size of the header block NATS sends for these headers (counted in max payload)."""
    return _HEADER_BLOCK_BYTES + sum(
        len(key.encode()) + len(value.encode()) + _HEADER_LINE_BYTES
        for key, value in headers.items()
    )


def dead_letter_envelope(
    msg: Msg, error: BaseException, *, refused_by: str, letter_id: str, max_payload: int
) -> tuple[bytes, dict[str, str]]:
    """The payload and headers of a refused message's dead letter, together under
    `max_payload` less a margin: a copy of the message when it fits, else a prefix of it and
    the stream and sequence where the original stays."""
    metadata = msg.metadata
    headers = {
        MSG_ID_HEADER: letter_id,
        ERROR_HEADER: error_text(error, ERROR_MAX_CHARS),
        SUBJECT_HEADER: _one_line(msg.subject, ERROR_MAX_CHARS),
        REFUSED_BY_HEADER: refused_by,
        STREAM_HEADER: metadata.stream,
        SEQUENCE_HEADER: str(metadata.sequence.stream),
        SIZE_HEADER: str(len(msg.data)),
        PAYLOAD_HEADER: "copy",
    }
    budget = max_payload - DEAD_LETTER_MARGIN_BYTES
    if len(msg.data) + header_block_bytes(headers) <= budget:
        return msg.data, headers
    headers[PAYLOAD_HEADER] = "prefix"
    room = max(budget - header_block_bytes(headers), 0)
    return msg.data[: min(DEAD_LETTER_PREFIX_BYTES, room)], headers

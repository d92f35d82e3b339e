"""Real ZTF alert packets read from files: Avro packets (as kowalski stores them) and Parquet rows
(as the Fink broker does), each checked and turned into the triplet our model scores.

`read_alert_file` reads every packet of one file (an Avro file may hold several; a Parquet
file holds one row an alert) and raises `AlertFileError`, naming the file, for anything it
cannot use: a suffix it does not know, a file that is not Avro or Parquet, a packet without
the fields an alert has, a stamp that is not gzipped FITS. `alert_files` expands folders into
their `.avro` and `.parquet` files. The triplet is `training.realbogus.evaluate.alert_triplet`'s
(a fading source flipped as our site would detect it). `AlertCandidate` is the part of a
packet's `candidate` record we use, validated as it comes in; `drb` is None in packets that
carry none (ZTF's deep real/bogus exists since 2019).
"""

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.realbogus.evaluate import alert_triplet

AVRO_SUFFIX = ".avro"
PARQUET_SUFFIX = ".parquet"
ALERT_SUFFIXES = (AVRO_SUFFIX, PARQUET_SUFFIX)
STAMP_KEYS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


class AlertFileError(Exception):
    """A file that holds no usable alert packets; the message names the file and the problem."""


class AlertCandidate(BaseModel):
    """The fields of a packet's `candidate` record that scoring and evaluation use."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    candid: int = Field(description="ZTF's unique id of this detection.")
    isdiffpos: str = Field(description="'t' or '1': brightening; 'f' or '0': fading.")
    magpsf: float = Field(description="PSF magnitude of the difference detection (mag).")
    drb: float | None = Field(default=None, ge=0.0, le=1.0, description="ZTF's deep real/bogus.")
    rb: float | None = Field(default=None, ge=0.0, le=1.0, description="ZTF's first real/bogus.")
    distnr: float | None = Field(
        default=None, description="Distance to the nearest source of the reference image (px)."
    )


@dataclass(frozen=True)
class AlertPacket:
    """One alert: where it came from, its object and candidate record, its triplet `[3, 31, 31]`."""

    path: Path
    object_id: str
    candidate: AlertCandidate
    triplet: np.ndarray


def alert_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, with each folder replaced by its `.avro` and `.parquet` files (all depths,
    sorted). A named file is kept whatever its suffix, so `read_alert_file` can refuse it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in ALERT_SUFFIXES)
        else:
            files.append(path)
    return files


def _records(path: Path) -> list[dict[str, Any]]:
    """The raw packets of one file, by its suffix."""
    if path.suffix == AVRO_SUFFIX:
        with path.open("rb") as stream:
            return [cast(dict[str, Any], record) for record in fastavro.reader(stream)]
    if path.suffix == PARQUET_SUFFIX:
        columns = ["objectId", "candidate", *STAMP_KEYS]
        return cast(list[dict[str, Any]], pq.read_table(path, columns=columns).to_pylist())
    known = " or ".join(ALERT_SUFFIXES)
    raise AlertFileError(f"{path}: not an alert file (expected {known})")


def packet_of(path: Path, record: dict[str, Any]) -> AlertPacket:
    """One raw packet checked and made into an `AlertPacket` (`AlertFileError` if unusable)."""
    try:
        candidate = AlertCandidate.model_validate(record.get("candidate"))
        object_id = str(record["objectId"])
        triplet = alert_triplet(record)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AlertFileError(f"{path}: bad candidate record ({problem})") from exc
    except (KeyError, TypeError) as exc:
        raise AlertFileError(f"{path}: packet without {exc}") from exc
    except (OSError, zlib.error, EOFError, ValueError) as exc:  # gzip, FITS
        raise AlertFileError(f"{path}: unreadable stamp ({exc})") from exc
    return AlertPacket(path, object_id, candidate, triplet)


def read_alert_file(path: Path) -> list[AlertPacket]:
    """Every packet of one Avro or Parquet alert file, in file order."""
    try:
        records = _records(path)
    except AlertFileError:
        raise
    except FileNotFoundError as exc:
        raise AlertFileError(f"{path}: no such file") from exc
    except (OSError, ValueError, TypeError, StopIteration, pa.ArrowException) as exc:
        kind = "Avro" if path.suffix == AVRO_SUFFIX else "Parquet"
        raise AlertFileError(f"{path}: not a readable {kind} alert file ({exc})") from exc
    if not records:
        raise AlertFileError(f"{path}: holds no alert packets")
    return [packet_of(path, record) for record in records]

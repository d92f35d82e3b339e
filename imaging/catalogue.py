"""Reference star catalogues: the stars of a field with known magnitudes, kept on the site's disk.

A site cannot tell thin cloud from a sparse field by looking at one frame: it measures how much
starlight arrived against what catalogue stars should have given (see `imaging.photometry`).
Sites keep an extract of a reference catalogue (e.g. Gaia DR3 or ATLAS-RefCat2, transformed to
the camera's filter) for the fields they observe, one FITS binary table per field, named after
the frame's `OBJECT`: `CATALOGUE_DIR/<object>.fits`, with columns `RA`, `DEC` (ICRS degrees) and
`MAG` (magnitude in the camera's filter) and the filter in the `FILTER` header keyword. The
simulator writes the same files for its simulated sky.

Reading validates the table; a file that is present but wrong raises `CatalogueError` naming
the file and the problem, a field without a file has no catalogue (None).
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

CATALOGUE_SUFFIX = ".fits"
COLUMNS = ("RA", "DEC", "MAG")
CACHED_CATALOGUES = 32
"""Field catalogues kept in memory (a few MB each at most)."""
MAX_STARS = 2_000_000
"""Larger tables are refused: a field extract this big is a mistake, not a catalogue."""
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.+-]")


class CatalogueError(ValueError):
    """A catalogue file that exists but cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class ReferenceCatalogue:
    """Stars of one field: ICRS positions in degrees and magnitudes in one filter."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    mag: np.ndarray
    filter_name: str | None = None

    def __len__(self) -> int:
        return len(self.mag)

    def pixel_positions(self, wcs: WCS) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) pixel positions of the stars in a frame with this WCS."""
        x, y = wcs.all_world2pix(self.ra_deg, self.dec_deg, 0)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def catalogue_file_name(object_name: str) -> str:
    """The file that holds the catalogue of the field called `object_name`."""
    safe = _UNSAFE_CHARACTERS.sub("_", object_name.strip())
    if not safe.strip("._"):
        raise CatalogueError(f"object name {object_name!r} cannot name a catalogue file")
    return f"{safe}{CATALOGUE_SUFFIX}"


def write_catalogue(catalogue: ReferenceCatalogue, path: Path) -> Path:
    """Write a catalogue as a FITS binary table at `path` (replacing any file there)."""
    table = Table(
        [catalogue.ra_deg, catalogue.dec_deg, catalogue.mag],
        names=COLUMNS,
        dtype=(np.float64, np.float64, np.float32),
    )
    hdu = fits.BinTableHDU(table, name="REFCAT")
    if catalogue.filter_name:
        hdu.header["FILTER"] = (catalogue.filter_name, "Filter of the MAG column")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    hdu.writeto(partial, overwrite=True)
    partial.replace(path)
    return path


def read_catalogue(path: Path) -> ReferenceCatalogue:
    """Read and validate one catalogue file; raise `CatalogueError` if it is unusable."""
    try:
        with fits.open(path, memmap=False) as hdul:
            table_hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
            if table_hdu is None:
                raise CatalogueError(f"{path}: no binary table in the file")
            names = {name.upper(): name for name in table_hdu.columns.names}
            missing = [column for column in COLUMNS if column not in names]
            if missing:
                raise CatalogueError(f"{path}: missing column(s) {', '.join(missing)}")
            if len(table_hdu.data) > MAX_STARS:
                raise CatalogueError(f"{path}: {len(table_hdu.data)} rows, more than {MAX_STARS}")
            ra, dec, mag = (np.asarray(table_hdu.data[names[c]], dtype=float) for c in COLUMNS)
            filter_name = table_hdu.header.get("FILTER")
    except (OSError, TypeError, ValueError) as exc:
        if isinstance(exc, CatalogueError):
            raise
        raise CatalogueError(f"{path}: not a readable FITS catalogue ({exc})") from exc
    usable = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(mag)
    usable &= (dec >= -90.0) & (dec <= 90.0) & (mag > -5.0) & (mag < 35.0)
    if not usable.any():
        raise CatalogueError(f"{path}: no star with a finite position and magnitude")
    return ReferenceCatalogue(
        ra_deg=ra[usable] % 360.0,
        dec_deg=dec[usable],
        mag=mag[usable],
        filter_name=str(filter_name) if filter_name else None,
    )


def find_catalogue(directory: Path, object_name: str | None) -> ReferenceCatalogue | None:
    """The catalogue of field `object_name` in `directory`, or None if the site has none.

    A field's table is read once while its file is unchanged: a site revisits its fields all
    night."""
    if not object_name:
        return None
    path = directory / catalogue_file_name(object_name)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return _read_unchanged(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=CACHED_CATALOGUES)
def _read_unchanged(path: Path, mtime_ns: int, size: int) -> ReferenceCatalogue:
    """`read_catalogue`, remembered by the file's modification time and size."""
    return read_catalogue(path)

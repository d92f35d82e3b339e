"""Writing simulated frames to disk: the FITS file and its `<stem>.truth.json` sidecar.

Files appear atomically (written under a hidden temporary name, then renamed), sidecar first, so
a site agent watching the folder never reads half a frame or a frame without its truth. The data
are unsigned 16-bit integers stored, as real cameras do, as BITPIX = 16 with BZERO = 32768.
"""

import os
from collections.abc import Callable
from pathlib import Path

from astropy.io import fits

from training.simulator.frame import SimulatedFrame
from training.simulator.pairs import SimulatedPair
from training.simulator.truth import FrameTruth


def truth_path(fits_path: Path) -> Path:
    """Where the truth of a FITS file lives: `name.fits` -> `name.truth.json`."""
    return fits_path.with_name(f"{fits_path.stem}.truth.json")


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write` fill a hidden temporary file, then rename it to `path` in one step."""
    partial = path.with_name(f".{path.name}.part")
    write(partial)
    os.replace(partial, path)


def write_frame(frame: SimulatedFrame, path: Path) -> Path:
    """Write a frame as FITS at `path` with its truth beside it; return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = truth_path(path)
    _replace_atomically(sidecar, lambda p: p.write_text(frame.truth.model_dump_json(indent=2)))
    hdu = fits.PrimaryHDU(data=frame.data, header=frame.header)
    _replace_atomically(path, lambda p: hdu.writeto(p, overwrite=True))
    return path


def write_pair(pair: SimulatedPair, directory: Path) -> tuple[Path, Path]:
    """Write a pair as `directory/reference.fits` and `directory/new.fits` (with truths)."""
    return (
        write_frame(pair.reference, directory / "reference.fits"),
        write_frame(pair.new, directory / "new.fits"),
    )


def read_truth(fits_path: Path) -> FrameTruth:
    """The truth written beside a simulated FITS file."""
    return FrameTruth.model_validate_json(truth_path(fits_path).read_text())

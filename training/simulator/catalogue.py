"""What a site knows about the simulated sky: field catalogues and the camera's calibration.

A real site measures transparency against a reference catalogue of its fields and its camera's
photometric calibration (`imaging.photometry`). For simulated frames both come from the
simulator: `field_catalogue` is the extract a site would hold of the frame's field (the stars
brighter than `CATALOGUE_FAINT_MAG`, with catalogue errors of `CATALOGUE_ERROR_MAG`, as a Gaia
extract transformed to the camera's filter has) and `camera_calibration` is what a clear night
and bias frames would have told the site about the camera.
"""

import json
import os
from pathlib import Path

import numpy as np

from imaging.catalogue import ReferenceCatalogue, catalogue_file_name, write_catalogue
from imaging.photometry import PhotometricCalibration
from training.simulator.camera import SimCamera
from training.simulator.frame import SimulatedFrame

CATALOGUE_FAINT_MAG = 22.0
"""Depth of the field extract (Pan-STARRS1 reaches r ~ 22 in single epochs)."""
CATALOGUE_ERROR_MAG = 0.02
"""RMS error of a catalogue magnitude after the transformation to the camera's filter."""
CATALOGUE_DIR_NAME = "catalogues"
CALIBRATION_FILE_NAME = "photometry.json"


def field_catalogue(frame: SimulatedFrame, rng: np.random.Generator) -> ReferenceCatalogue:
    """The catalogue extract of the frame's field."""
    stars = frame.stars
    bright = stars.mag <= CATALOGUE_FAINT_MAG
    errors = rng.normal(0.0, CATALOGUE_ERROR_MAG, int(bright.sum()))
    return ReferenceCatalogue(
        ra_deg=stars.ra_deg[bright],
        dec_deg=stars.dec_deg[bright],
        mag=stars.mag[bright] + errors,
        filter_name=frame.truth.camera.filter_name,
    )


def camera_calibration(camera: SimCamera, catalogue_dir: Path | None) -> PhotometricCalibration:
    """The photometric calibration a site with this camera would have measured."""
    return PhotometricCalibration(
        zero_point_mag=camera.zero_point_mag,
        extinction_mag_per_airmass=camera.extinction_mag_per_airmass,
        bias_adu=camera.bias_adu,
        filter_name=camera.filter_name,
        catalogue_dir=catalogue_dir,
    )


def write_field_catalogue(frame: SimulatedFrame, directory: Path, rng: np.random.Generator) -> Path:
    """Write the catalogue of the frame's field into `directory`, named after its OBJECT."""
    name = catalogue_file_name(str(frame.header["OBJECT"]))
    return write_catalogue(field_catalogue(frame, rng), directory / name)


def write_calibration(camera: SimCamera, path: Path, catalogue_dir: str) -> Path:
    """Write the camera's calibration as JSON, its catalogue folder relative to the file."""
    calibration = camera_calibration(camera, Path(catalogue_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")  # processes share the file
    partial.write_text(json.dumps(calibration.model_dump(mode="json"), indent=2))
    partial.replace(path)
    return path

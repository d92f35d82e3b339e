"""Photometric quality: transparency from catalogue stars, sky brightness from the background.

Two of the fleet's quality criteria cannot be seen in the picture a CNN gets (the preprocessing
divides the sky level and the star brightness out): how much starlight came through the clouds,
and how bright the sky was. Both are measured here, as an observatory pipeline does, against the
site's photometric calibration (`PhotometricCalibration`: the camera's zero point on a clear
night, the extinction per airmass and the bias level):

- **transparency** = measured / expected starlight of catalogue stars (`imaging.catalogue`),
  with its error. Each star's expected electrons follow from its catalogue magnitude, the zero
  point, the extinction at the frame's AIRMASS and EXPTIME; its light is measured by aperture
  photometry (`imaging.starlight`). The zero point of the exposure follows from both.
- **sky brightness** (mag/arcsec²) = the zero point minus 2.5 log10 of the bias-subtracted
  background in electrons per second per square arcsecond.

Everything a frame lacks (a WCS, EXPTIME, GAIN, AIRMASS, a catalogue, enough stars, the
calibrated filter) leaves the quantity unknown (None) with a note saying why, never an error.
"""

import json
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imaging.catalogue import CatalogueError, find_catalogue
from imaging.fits_reader import Frame
from imaging.starlight import MIN_STARS, Starlight, starlight_transparency

log = logging.getLogger(__name__)


class PhotometryError(ValueError):
    """A calibration file that cannot be used; the message names the file and the problem."""


class PhotometricCalibration(BaseModel):
    """What a site knows about its camera's photometry, from a clear night and bias frames."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zero_point_mag: float = Field(
        gt=10.0, lt=40.0, description="Magnitude giving 1 e-/s at airmass 1 under a clear sky."
    )
    extinction_mag_per_airmass: float = Field(default=0.12, ge=0.0, le=2.0)
    bias_adu: float = Field(default=0.0, ge=0.0, le=65535.0, description="Bias level (ADU).")
    filter_name: str | None = Field(
        default=None, description="The calibrated filter; frames in another one are not graded."
    )
    catalogue_dir: Path | None = Field(
        default=None, description="Folder of field catalogues (see imaging.catalogue)."
    )

    @classmethod
    def load(cls, path: Path) -> "PhotometricCalibration":
        """Read a calibration from JSON or TOML; a relative catalogue_dir is beside the file."""
        try:
            text = path.read_text()
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
            calibration = cls.model_validate(raw)
        except (OSError, ValueError, ValidationError) as exc:
            raise PhotometryError(f"{path}: not a usable photometric calibration: {exc}") from exc
        folder = calibration.catalogue_dir
        if folder is not None and not folder.is_absolute():
            calibration = calibration.model_copy(update={"catalogue_dir": path.parent / folder})
        return calibration


@dataclass(frozen=True)
class Exposure:
    """What the header says about how the frame was taken."""

    exptime_s: float
    gain_e_per_adu: float
    airmass: float | None
    filter_name: str | None
    object_name: str | None


@dataclass(frozen=True)
class PhotometryResult:
    """Measured transparency, zero point and sky brightness; None where unknown, and why."""

    transparency: float | None = None
    transparency_error: float | None = None
    zero_point_mag: float | None = None
    sky_brightness_mag_arcsec2: float | None = None
    stars: int = 0
    note: str | None = None


def exposure_of(frame: Frame) -> Exposure | str:
    """The exposure facts of a frame (EXPTIME and FILTER as `read_frame` parsed them, GAIN,
    AIRMASS and OBJECT from its header), or what is missing."""
    exptime = frame.identity.exptime_s
    gain = _positive_number(frame.header, "GAIN")
    if not exptime or gain is None:
        missing = [key for key, value in (("EXPTIME", exptime), ("GAIN", gain)) if not value]
        return f"no usable {' or '.join(missing)} in the header"
    airmass = _positive_number(frame.header, "AIRMASS")
    object_name = frame.header.get("OBJECT")
    return Exposure(
        exptime_s=exptime,
        gain_e_per_adu=gain,
        airmass=airmass if airmass is not None and airmass >= 1.0 else None,
        filter_name=frame.identity.filter,
        object_name=str(object_name).strip() if object_name else None,
    )


def _positive_number(header: fits.Header, key: str) -> float | None:
    try:
        number = float(header.get(key, math.nan))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def clear_sky_zero_point(calibration: PhotometricCalibration, airmass: float) -> float:
    """The magnitude that gives 1 e-/s at this airmass under a clear sky."""
    return calibration.zero_point_mag - calibration.extinction_mag_per_airmass * (airmass - 1.0)


def measure_photometry(
    frame: Frame,
    *,
    background_adu: float,
    pixel_scale_arcsec: float | None,
    saturation_adu: float,
    calibration: PhotometricCalibration,
) -> PhotometryResult:
    """Transparency and sky brightness of one raw frame against the site's calibration."""
    exposure = exposure_of(frame)
    if isinstance(exposure, str):
        return PhotometryResult(note=exposure)
    if calibration.filter_name and exposure.filter_name != calibration.filter_name:
        return PhotometryResult(
            note=f"frame filter {exposure.filter_name!r} is not the calibrated "
            f"{calibration.filter_name!r}"
        )
    sky = (
        sky_brightness_mag_arcsec2(
            background_adu, exposure, calibration, pixel_scale_arcsec=pixel_scale_arcsec
        )
        if pixel_scale_arcsec
        else None
    )
    starlight = _catalogue_starlight(frame.data, frame.wcs, exposure, saturation_adu, calibration)
    if isinstance(starlight, str):
        return PhotometryResult(sky_brightness_mag_arcsec2=sky, note=starlight)
    assert exposure.airmass is not None  # _catalogue_starlight needs it
    zero_point = clear_sky_zero_point(calibration, exposure.airmass) + 2.5 * math.log10(
        max(starlight.transparency, 1e-6)
    )
    return PhotometryResult(
        transparency=starlight.transparency,
        transparency_error=starlight.error,
        zero_point_mag=zero_point,
        sky_brightness_mag_arcsec2=sky,
        stars=starlight.stars,
    )


def sky_brightness_mag_arcsec2(
    background_adu: float,
    exposure: Exposure,
    calibration: PhotometricCalibration,
    *,
    pixel_scale_arcsec: float,
) -> float | None:
    """Sky surface brightness from the raw background level (None if it is not above bias)."""
    electrons = (background_adu - calibration.bias_adu) * exposure.gain_e_per_adu
    rate_per_arcsec2 = electrons / exposure.exptime_s / pixel_scale_arcsec**2
    if not rate_per_arcsec2 > 0:
        return None
    return calibration.zero_point_mag - 2.5 * math.log10(rate_per_arcsec2)


def _catalogue_starlight(
    data: np.ndarray,
    wcs: WCS | None,
    exposure: Exposure,
    saturation_adu: float,
    calibration: PhotometricCalibration,
) -> Starlight | str:
    """The starlight measured against the catalogue, or why it cannot be measured."""
    if calibration.catalogue_dir is None:
        return "no catalogue folder configured"
    if wcs is None:
        return "no WCS to place catalogue stars"
    if exposure.airmass is None:
        return "no usable AIRMASS in the header"
    try:
        catalogue = find_catalogue(calibration.catalogue_dir, exposure.object_name)
    except CatalogueError as exc:
        log.warning("catalogue unusable: %s", exc)
        return f"catalogue unusable: {exc}"
    if catalogue is None:
        return f"no catalogue for field {exposure.object_name!r}"
    if (
        catalogue.filter_name
        and exposure.filter_name
        and catalogue.filter_name != exposure.filter_name
    ):
        return f"catalogue filter {catalogue.filter_name!r} is not the frame's"
    zero_point = clear_sky_zero_point(calibration, exposure.airmass)
    expected_e = exposure.exptime_s * 10.0 ** (-0.4 * (catalogue.mag - zero_point))
    measured = starlight_transparency(
        data,
        catalogue,
        wcs,
        expected_e=expected_e,
        gain_e_per_adu=exposure.gain_e_per_adu,
        saturation_adu=saturation_adu,
    )
    if measured is None:
        return f"fewer than {MIN_STARS} catalogue stars measurable"
    return measured

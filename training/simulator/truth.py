"""What is really in a simulated frame: its conditions, label, grades and injected transients.

`FrameTruth` is written beside every FITS file as `<stem>.truth.json` and, in short, as `SIM*`
header keywords. Pixel positions are 0-based (numpy and `astropy.wcs` `pixel_to_world`
convention): FITS pixel = position + 1.
"""

from pydantic import BaseModel, ConfigDict, Field

from protos import QualityLabel, SiteLocation
from protos.base import UtcDatetime
from training.simulator.camera import SimCamera
from training.simulator.conditions import ObservingConditions


class InjectedTransient(BaseModel):
    """A point source present in the new frame of a pair and absent from its reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ra_deg: float = Field(ge=0.0, lt=360.0)
    dec_deg: float = Field(ge=-90.0, le=90.0)
    x_px: float = Field(description="0-based column in the new frame.")
    y_px: float = Field(description="0-based row in the new frame.")
    ref_x_px: float = Field(description="0-based column of the same sky position in the reference.")
    ref_y_px: float = Field(description="0-based row of the same sky position in the reference.")
    flux_e: float = Field(gt=0.0, description="Electrons it delivers to the detector.")
    mag: float = Field(description="Its magnitude in the camera's filter.")
    snr: float = Field(
        gt=0.0,
        description="Signal-to-noise of PSF photometry in the new frame over the sky's noise "
        "(a host galaxy's light adds noise this leaves out).",
    )
    host_offset_arcsec: float | None = Field(
        default=None, ge=0.0, description="Distance from its host galaxy's centre; None: no host."
    )


class FrameTruth(BaseModel):
    """The physical truth of one simulated frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: QualityLabel = Field(description="Worst grade over all criteria.")
    grades: dict[str, QualityLabel] = Field(description="Grade of each threshold criterion.")
    conditions: ObservingConditions
    camera: SimCamera
    site_name: str
    site: SiteLocation
    date_obs: UtcDatetime
    ra_deg: float = Field(description="Frame centre (CRVAL1).")
    dec_deg: float = Field(description="Frame centre (CRVAL2).")
    altitude_deg: float
    airmass: float
    sky_e_per_px: float = Field(description="Sky electrons per pixel at the frame centre.")
    mean_transmission: float = Field(description="Cloud transmission averaged over the frame.")
    saturated_fraction: float = Field(description="Fraction of pixels at the saturation level.")
    stars_in_frame: int = Field(description="Catalogue stars whose centre falls in the frame.")
    cosmic_rays: int = Field(description="Pixels hit by cosmic rays.")
    hot_pixels: int
    transients: list[InjectedTransient] = Field(default_factory=list)

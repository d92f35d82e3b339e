"""The simulated telescope and camera: the detector (`protos.CameraConfig`) plus photometry.

Defaults describe a 1 m f/5 telescope with a 1k x 1k CCD of 15 um pixels in r: 0.6 arcsec/px,
gain 1.5 e-/ADU, 6 e- read noise, a 1000 ADU bias, full well at 60000 ADU, and a zero point of
24.2 mag (the magnitude that gives 1 e-/s at airmass 1), so a 60 s frame under a 21 mag/arcsec^2
sky holds ~410 e- of sky per pixel and stars saturate near r = 13 in 2 arcsec seeing.
"""

import numpy as np
from pydantic import Field

from protos import CameraConfig


class SimCamera(CameraConfig):
    """A camera on a telescope, as the simulator needs it.

    It is a `CameraConfig` (pass it wherever the contract wants one, e.g. `SiteConfig.camera`:
    only the detector fields go on the wire) plus the photometry and defects of the camera.
    """

    pixel_scale_arcsec: float = Field(default=0.6, gt=0.0, le=60.0)
    gain_e_per_adu: float = Field(default=1.5, gt=0.0)
    read_noise_e: float = Field(default=6.0, ge=0.0)
    saturation_adu: float = Field(default=60000.0, gt=0.0, le=65535.0)
    width_px: int = Field(default=1024, ge=64, le=20_000)
    height_px: int = Field(default=1024, ge=64, le=20_000)
    bias_adu: float = Field(default=1000.0, ge=0.0, le=10000.0)
    zero_point_mag: float = Field(
        default=24.2, description="Magnitude giving 1 e-/s at airmass 1 in this filter."
    )
    extinction_mag_per_airmass: float = Field(default=0.12, ge=0.0)
    exptime_s: float = Field(default=60.0, gt=0.0)
    filter_name: str = Field(default="r", min_length=1, max_length=16)
    telescope: str = Field(default="Skyfleet 1.0m", min_length=1, max_length=64)
    instrument: str = Field(default="SimCCD", min_length=1, max_length=64)
    vignetting_fraction: float = Field(
        default=0.04, ge=0.0, lt=1.0, description="Light lost in the frame corners."
    )
    dark_current_e_per_s: float = Field(default=0.002, ge=0.0)
    hot_pixels_per_mpx: float = Field(default=25.0, ge=0.0)
    cosmic_rays_per_mpx_per_s: float = Field(
        default=0.15, ge=0.0, description="Cosmic-ray hits per megapixel per second."
    )
    defect_seed: int = Field(
        default=0, ge=0, description="Seed of the camera's fixed hot-pixel map."
    )

    def source_electrons(self, mag: np.ndarray | float, airmass: float) -> np.ndarray:
        """Electrons collected in one exposure from sources of magnitude `mag`."""
        extinction = self.extinction_mag_per_airmass * (airmass - 1.0)
        return self.exptime_s * 10.0 ** (
            -0.4 * (np.asarray(mag) - self.zero_point_mag + extinction)
        )

    def source_magnitude(self, electrons: np.ndarray | float, airmass: float) -> np.ndarray:
        """The magnitude of a source that gives `electrons` in one exposure."""
        extinction = self.extinction_mag_per_airmass * (airmass - 1.0)
        rate = np.asarray(electrons) / self.exptime_s
        return self.zero_point_mag - 2.5 * np.log10(rate) - extinction

    def sky_electrons_per_px(self, sky_mag_arcsec2: float) -> float:
        """Sky electrons per pixel in one exposure under a sky of this surface brightness."""
        rate = 10.0 ** (-0.4 * (sky_mag_arcsec2 - self.zero_point_mag))
        return float(rate * self.pixel_scale_arcsec**2 * self.exptime_s)

    @property
    def full_well_e(self) -> float:
        """Electrons that fill a pixel up to the saturation level above the bias."""
        return (self.saturation_adu - self.bias_adu) * self.gain_e_per_adu

"""Transparency without a hand-built catalogue: against the site's own reference of each field.

Most sites have no photometric catalogue of the fields they watch, yet clouds must not pass as
"good". A site sees its fields again and again, so it keeps, per field and filter, a star list
of its own (`SiteReferences`), measured once on a frame of that field:

- **built** from the first frame of a field the site scores: the brightest unsaturated compact
  sources (`find_stars`), placed on the sky with the frame's WCS, each given an instrumental
  magnitude (electrons per second at airmass 1, the extinction taken out) and then shifted so
  that `starlight_transparency` — the same aperture photometry every later frame gets — gives
  exactly 1 on the frame it was built from;
- **measured** on every later frame of the field: measured / expected starlight of those stars
  (`imaging.starlight`), so 1 means "as clear as the reference frame", 0.6 thin cloud;
- **kept at the clearest**: a frame clearly more transparent than the reference (by
  `CLEARER_MARGIN` and three sigma) replaces it, so after a clear night the reference is a
  photometric one and thin cloud on the first frame does not bias a field for good.

The result is relative (`TransparencySource.SITE_REFERENCE`): a site with a calibrated catalogue
(`imaging.photometry`) gets absolute transparency and a zero point; this needs neither. Files are
the catalogue format of `imaging.catalogue`, one per field and filter, under the site's folder.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging.catalogue import (
    CatalogueError,
    ReferenceCatalogue,
    catalogue_file_name,
    read_catalogue,
    write_catalogue,
)
from imaging.fits_reader import Frame
from imaging.photometry import Exposure
from imaging.starlight import MIN_STARS, Starlight, starlight_transparency
from imaging.transients.references import field_id_for
from imaging.transients.sources import find_stars, subtract_background

log = logging.getLogger(__name__)

INSTRUMENTAL_ZERO_POINT_MAG = 25.0
"""Magnitude of 1 e-/s in the reference's instrumental system: any constant works, since only
ratios are used; 25 keeps the magnitudes of ordinary stars positive."""
DEFAULT_EXTINCTION_MAG_PER_AIRMASS = 0.12
"""Typical broadband extinction at a good site (V ~0.15, r ~0.10): takes out the change of
starlight with airmass between the reference frame and a later one."""
REFERENCE_MIN_SNR = 20.0
"""Stars fainter than this aperture S/N on the reference frame are too noisy to weigh clouds."""
REFERENCE_MAX_STARS = 300
"""Brightest stars kept per field: enough for `starlight` (which measures at most 100)."""
CLEARER_MARGIN = 0.05
"""A frame at least 5 % (and three sigma) more transparent than the reference replaces it."""
FIELD_GRID_DEG = 0.1
"""Frames without OBJECT are grouped by their centre rounded to this grid (a pointing's repeat
accuracy is a few arcminutes)."""


@dataclass(frozen=True)
class RelativeTransparency:
    """A frame's transparency relative to its field's reference, and whether this frame became
    the new reference."""

    starlight: Starlight
    rebuilt: bool


class SiteReferences:
    """The site's star lists of its fields, one catalogue file per field and filter."""

    def __init__(self, folder: Path, extinction_mag_per_airmass: float | None = None) -> None:
        self.folder = folder
        self.extinction = (
            DEFAULT_EXTINCTION_MAG_PER_AIRMASS
            if extinction_mag_per_airmass is None
            else extinction_mag_per_airmass
        )

    def transparency(
        self, frame: Frame, exposure: Exposure, saturation_adu: float
    ) -> RelativeTransparency | str:
        """The frame's transparency against its field's reference (built from this frame if
        the field has none yet), or why it cannot be measured."""
        if frame.wcs is None or not frame.wcs.has_celestial:
            return "no WCS to place reference stars"
        if exposure.airmass is None:
            return "no usable AIRMASS in the header"
        path = self.folder / catalogue_file_name(self.field_name(frame, exposure))
        reference = self._read(path)
        if reference is None:
            return self._rebuilt(frame, exposure, saturation_adu, path)
        measured = self._starlight(frame, reference, exposure, saturation_adu)
        if measured is None:
            return f"fewer than {MIN_STARS} reference stars measurable"
        clearer = measured.transparency - 1.0
        if clearer > CLEARER_MARGIN and clearer > 3.0 * measured.error:
            log.info(
                "clearer than the field's reference: rebuilt field=%s transparency=%.2f",
                path.stem,
                measured.transparency,
            )
            return self._rebuilt(frame, exposure, saturation_adu, path)
        return RelativeTransparency(measured, rebuilt=False)

    @staticmethod
    def field_name(frame: Frame, exposure: Exposure) -> str:
        """The field a frame belongs to (OBJECT, else its rounded centre) and its filter."""
        field = exposure.object_name
        if not field:
            pointing = frame.identity.pointing
            if pointing is None:
                field = "unplaced"
            else:
                field = field_id_for(
                    round(pointing.ra_deg / FIELD_GRID_DEG) * FIELD_GRID_DEG % 360.0,
                    round(pointing.dec_deg / FIELD_GRID_DEG) * FIELD_GRID_DEG,
                )
        return f"{field}__{exposure.filter_name or 'nofilter'}"

    def _read(self, path: Path) -> ReferenceCatalogue | None:
        if not path.exists():
            return None
        try:
            return read_catalogue(path)
        except CatalogueError as exc:
            log.warning("site reference unusable, building it again: %s", exc)
            return None

    def _starlight(
        self,
        frame: Frame,
        reference: ReferenceCatalogue,
        exposure: Exposure,
        saturation_adu: float,
    ) -> Starlight | None:
        """Measured / expected starlight of the reference's stars in this frame."""
        assert frame.wcs is not None
        return starlight_transparency(
            frame.data,
            reference,
            frame.wcs,
            expected_e=self._expected_e(reference, exposure),
            gain_e_per_adu=exposure.gain_e_per_adu,
            saturation_adu=saturation_adu,
        )

    def _expected_e(self, reference: ReferenceCatalogue, exposure: Exposure) -> np.ndarray:
        assert exposure.airmass is not None
        zero_point = INSTRUMENTAL_ZERO_POINT_MAG - self.extinction * (exposure.airmass - 1.0)
        return exposure.exptime_s * 10.0 ** (-0.4 * (reference.mag - zero_point))

    def _rebuilt(
        self, frame: Frame, exposure: Exposure, saturation_adu: float, path: Path
    ) -> RelativeTransparency | str:
        """Make this frame the field's reference; its own transparency is 1 by definition."""
        draft = self._stars_of(frame, exposure, saturation_adu)
        if isinstance(draft, str):
            return draft
        # The draft's magnitudes come from sep's apertures; `starlight` measures with its own
        # aperture and correction. Shift the draft so the two agree on this frame.
        measured = self._starlight(frame, draft, exposure, saturation_adu)
        if measured is None or not measured.transparency > 0.0:
            return f"fewer than {MIN_STARS} stars measurable to build the field's reference"
        shifted = ReferenceCatalogue(
            ra_deg=draft.ra_deg,
            dec_deg=draft.dec_deg,
            mag=(draft.mag - 2.5 * math.log10(measured.transparency)).astype(np.float32),
            filter_name=exposure.filter_name,
        )
        write_catalogue(shifted, path)
        relative = measured.error / measured.transparency
        return RelativeTransparency(Starlight(1.0, relative, measured.stars), rebuilt=True)

    def _stars_of(
        self, frame: Frame, exposure: Exposure, saturation_adu: float
    ) -> ReferenceCatalogue | str:
        """The frame's brightest clean stars with instrumental magnitudes at airmass 1."""
        assert frame.wcs is not None and exposure.airmass is not None
        sky = subtract_background(frame.data, saturation_adu)
        stars = find_stars(sky, min_snr=REFERENCE_MIN_SNR, max_sources=REFERENCE_MAX_STARS)
        clean = (stars.peak < saturation_adu) & (stars.flux > 0) & (stars.snr >= REFERENCE_MIN_SNR)
        stars = stars.select(clean)
        if len(stars) < MIN_STARS:
            return f"fewer than {MIN_STARS} stars to build the field's reference"
        ra, dec = frame.wcs.celestial.all_pix2world(stars.x, stars.y, 0)
        rate_e = stars.flux * exposure.gain_e_per_adu / exposure.exptime_s
        mag = (
            INSTRUMENTAL_ZERO_POINT_MAG
            - 2.5 * np.log10(rate_e)
            - self.extinction * (exposure.airmass - 1.0)
        )
        return ReferenceCatalogue(
            ra_deg=np.asarray(ra, dtype=float) % 360.0,
            dec_deg=np.asarray(dec, dtype=float),
            mag=np.asarray(mag, dtype=np.float32),
            filter_name=exposure.filter_name,
        )

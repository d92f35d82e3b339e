"""Reference/new pairs of one field with injected transients, the difference-imaging test bed.

The reference is taken a number of sidereal days before the new frame, so the field stands at
the same altitude. Both see the same stars; the new frame is pointed a few pixels away, has
slightly different seeing, clouds and noise, and holds the transients. A transient's S/N is that
of PSF photometry on the new frame alone: flux / sqrt(flux + noise-equivalent area x (sky + dark
+ read noise^2)); a difference with an equally deep reference lowers it by about sqrt(2) (the S/N
in the best difference with the reference a search actually uses is
`training.realbogus.dataset.SearchPair.difference_snr`).
Transients keep clear of stars brighter than a tenth of their own flux and of each other, so
each one is a clean, unambiguous truth.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from astropy.wcs import WCS

from protos import QualityLabel, SiteLocation
from training.simulator.camera import SimCamera
from training.simulator.conditions import ObservingConditions, grade_range, sample_conditions
from training.simulator.frame import (
    FAINTEST_STAR_E,
    SimulatedFrame,
    frame_psf,
    pointing_or_random,
    simulate_frame,
    sky_electrons,
)
from training.simulator.header import field_name
from training.simulator.pointing import (
    DEFAULT_SITE_LOCATION,
    DEFAULT_SITE_NAME,
    airmass,
    tan_wcs,
)
from training.simulator.starfield import StarCatalogue, draw_star_catalogue
from training.simulator.truth import InjectedTransient

DEFAULT_NIGHT = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
"""Start of the default observing night (UTC) when a caller gives no date."""

SIDEREAL_DAY = timedelta(seconds=86164.0905)


@dataclass(frozen=True)
class SimulatedPair:
    """A reference frame, a new frame of the same field, and the transients only the new has."""

    reference: SimulatedFrame
    new: SimulatedFrame
    transients: list[InjectedTransient]


def transient_flux_e(snr: np.ndarray, background_var_e: np.ndarray, area_px: float) -> np.ndarray:
    """The flux giving PSF-photometry S/N `snr` over a per-pixel background variance."""
    snr2 = np.asarray(snr) ** 2
    return (snr2 + np.sqrt(snr2**2 + 4.0 * snr2 * background_var_e * area_px)) / 2.0


def _similar_conditions(
    rng: np.random.Generator, reference: ObservingConditions
) -> ObservingConditions:
    """Good conditions for the new frame, with seeing within -15 % / +20 % of the reference."""
    low, high = grade_range("seeing", QualityLabel.GOOD)
    seeing = float(np.clip(reference.seeing_fwhm_arcsec * rng.uniform(0.85, 1.2), low, high))
    return sample_conditions(rng, QualityLabel.GOOD).model_copy(
        update={"seeing_fwhm_arcsec": seeing}
    )


def _transient_positions(
    rng: np.random.Generator,
    flux_e: np.ndarray,
    star_xy: np.ndarray,
    star_e: np.ndarray,
    shape: tuple[int, int],
    clearance_px: float,
) -> np.ndarray:
    """Positions (n x 2, x then y) clear of the frame edges, bright stars and each other."""
    height, width = shape
    placed: list[np.ndarray] = []
    for flux in flux_e:
        neighbours = star_xy[star_e > 0.1 * flux]
        for _ in range(1000):
            xy = rng.uniform([clearance_px] * 2, [width - clearance_px, height - clearance_px])
            others = np.vstack([neighbours, *placed]) if placed else neighbours
            if len(others) == 0 or np.min(np.hypot(*(others - xy).T)) > clearance_px:
                placed.append(xy)
                break
        else:
            raise ValueError("field too crowded to place the transients clear of stars")
    return np.array(placed).reshape(-1, 2)


def inject_transients(
    rng: np.random.Generator,
    count: int,
    snr_range: tuple[float, float],
    conditions: ObservingConditions,
    camera: SimCamera,
    new_wcs: WCS,
    reference_wcs: WCS,
    stars: StarCatalogue,
    air: float,
) -> list[InjectedTransient]:
    """Draw `count` transients for a new frame, their S/N log-uniform in `snr_range`."""
    low, high = snr_range
    if not 0 < low <= high:
        raise ValueError(f"snr_range must be 0 < low <= high, not {snr_range}")
    shape = (camera.height_px, camera.width_px)
    psf = frame_psf(conditions, camera)
    snr = np.exp(rng.uniform(np.log(low), np.log(high), count))
    fwhm_px = conditions.seeing_fwhm_arcsec / camera.pixel_scale_arcsec
    typical_var = float(camera.sky_electrons_per_px(conditions.sky_mag_arcsec2))
    first_guess = transient_flux_e(snr, typical_var, psf.noise_equivalent_area_px())
    star_xy = np.column_stack(stars.pixel_positions(new_wcs))
    xy = _transient_positions(
        rng,
        first_guess,
        star_xy,
        camera.source_electrons(stars.mag, air),
        shape,
        clearance_px=max(4.0 * fwhm_px, psf.core.shape[0] / 2.0),
    )
    variance = sky_electrons(xy[:, 0], xy[:, 1], conditions, camera) + camera.read_noise_e**2
    flux = transient_flux_e(snr, variance, psf.noise_equivalent_area_px())
    ra, dec = new_wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    ref_x, ref_y = reference_wcs.all_world2pix(ra, dec, 0)
    mag = camera.source_magnitude(flux, air)
    return [
        InjectedTransient(
            ra_deg=float(ra[i]) % 360.0,
            dec_deg=float(dec[i]),
            x_px=float(xy[i, 0]),
            y_px=float(xy[i, 1]),
            ref_x_px=float(ref_x[i]),
            ref_y_px=float(ref_y[i]),
            flux_e=float(flux[i]),
            mag=float(mag[i]),
            snr=float(snr[i]),
        )
        for i in range(count)
    ]


def simulate_pair(
    camera: SimCamera,
    *,
    n_transients: int,
    snr_range: tuple[float, float],
    rng: np.random.Generator,
    date_obs: datetime = DEFAULT_NIGHT,
    site_name: str = DEFAULT_SITE_NAME,
    site: SiteLocation = DEFAULT_SITE_LOCATION,
    ra_deg: float | None = None,
    dec_deg: float | None = None,
    reference_conditions: ObservingConditions | None = None,
    new_conditions: ObservingConditions | None = None,
    max_offset_px: float = 5.0,
    reference_age_days: int = 30,
) -> SimulatedPair:
    """A reference and a new frame of one field (new taken at `date_obs`, pointed up to
    `max_offset_px` away) with `n_transients` transients in the new frame only."""
    ra_deg, dec_deg, altitude = pointing_or_random(rng, ra_deg, dec_deg, date_obs, site)
    air = airmass(altitude)
    reference_wcs = tan_wcs(camera, ra_deg, dec_deg)
    stars = draw_star_catalogue(
        rng,
        reference_wcs,
        faint_mag=float(camera.source_magnitude(FAINTEST_STAR_E, air)),
        margin_px=32 + int(np.ceil(max_offset_px)),
    )
    reference_conditions = reference_conditions or sample_conditions(rng, QualityLabel.GOOD)
    new_conditions = new_conditions or _similar_conditions(rng, reference_conditions)
    offset = rng.uniform(-max_offset_px, max_offset_px, 2)
    centre = ((camera.width_px - 1) / 2.0 + offset[0], (camera.height_px - 1) / 2.0 + offset[1])
    new_ra, new_dec = (float(v) for v in reference_wcs.all_pix2world(*centre, 0))
    new_wcs = tan_wcs(camera, new_ra, new_dec)
    transients = inject_transients(
        rng,
        n_transients,
        snr_range,
        new_conditions,
        camera,
        new_wcs,
        reference_wcs,
        stars,
        air,
    )
    reference = simulate_frame(
        reference_conditions,
        camera,
        date_obs=date_obs - reference_age_days * SIDEREAL_DAY,
        site_name=site_name,
        site=site,
        rng=rng,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        stars=stars,
        object_name=field_name(ra_deg, dec_deg),
    )
    new = simulate_frame(
        new_conditions,
        camera,
        date_obs=date_obs,
        site_name=site_name,
        site=site,
        rng=rng,
        ra_deg=new_ra,
        dec_deg=new_dec,
        stars=stars,
        transients=transients,
        object_name=field_name(ra_deg, dec_deg),
    )
    return SimulatedPair(reference=reference, new=new, transients=transients)

"""Reference/new pairs of one field with injected transients, the difference-imaging test bed.

The reference is taken a number of sidereal days before the new frame, so the field stands at
the same altitude. Both see the same stars; the new frame is pointed a few pixels away, has
slightly different seeing, clouds and noise, and holds the transients. A transient's S/N is that
of PSF photometry on the new frame alone: flux / sqrt(flux + noise-equivalent area x (sky + dark
+ read noise^2 + the light of a galaxy under it)); a difference with an equally deep reference
lowers it by about sqrt(2) (the S/N in the best difference with the reference a search actually
uses is
`training.realbogus.dataset.SearchPair.difference_snr`).
Transients keep clear of stars brighter than a tenth of their own flux and of each other, so
each one is a clean, unambiguous truth. A chosen fraction of them lie on galaxies of the field,
as supernovae do: any galaxy brighter than `HOST_FAINT_MAG` (most hosts are faint, as the
counts are), the offset drawn from an exponential disc of the host's size and shape (supernovae
follow their host's light).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from protos import QualityLabel, SiteLocation
from training.simulator.camera import SimCamera
from training.simulator.conditions import ObservingConditions, grade_range, sample_conditions
from training.simulator.frame import (
    FAINTEST_GALAXY_E,
    FAINTEST_STAR_E,
    SimulatedFrame,
    frame_psf,
    pointing_or_random,
    simulate_frame,
    sky_electrons,
)
from training.simulator.galaxies import (
    GalaxyCatalogue,
    draw_galaxy_catalogue,
    render_galaxy_light,
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
HOST_FAINT_MAG = 21.5
"""Hosts of transients are galaxies brighter than this (fainter ones are barely seen)."""
EXPONENTIAL_HALF_LIGHT_SCALES = 1.678
"""An exponential disc's half-light radius in scale lengths."""
PLACEMENT_TRIES = 1000
"""Positions drawn for a transient from each of its proposals before the next is tried."""


@dataclass(frozen=True)
class SimulatedPair:
    """A reference frame, a new frame of the same field, and the transients only the new has."""

    reference: SimulatedFrame
    new: SimulatedFrame
    transients: list[InjectedTransient]


def transient_flux_e(
    snr: np.ndarray, background_var_e: np.ndarray | float, area_px: float
) -> np.ndarray:
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


Proposal = Callable[[], tuple[np.ndarray, float | None]]
"""Draws one candidate position (x, y) and its offset from a host in arcsec (None: no host)."""


def _anywhere(rng: np.random.Generator, shape: tuple[int, int], clearance_px: float) -> Proposal:
    """Positions anywhere in the frame, `clearance_px` from its edges."""
    height, width = shape

    def propose() -> tuple[np.ndarray, float | None]:
        low, high = [clearance_px] * 2, [width - clearance_px, height - clearance_px]
        return rng.uniform(low, high), None

    return propose


def _on_hosts(
    rng: np.random.Generator,
    galaxies: GalaxyCatalogue,
    wcs: WCS,
    pixel_scale_arcsec: float,
    shape: tuple[int, int],
    clearance_px: float,
) -> Proposal | None:
    """Positions on galaxies brighter than `HOST_FAINT_MAG` whose centre is `clearance_px` from
    the frame's edges, any such galaxy equally likely, offset as the light of an exponential disc
    of the host's half-light radius and axis ratio; None if the frame has no such galaxy."""
    height, width = shape
    x, y = galaxies.pixel_positions(wcs)
    inside = (x >= clearance_px) & (x < width - clearance_px)
    inside &= (y >= clearance_px) & (y < height - clearance_px)
    hosts = np.flatnonzero(inside & (galaxies.mag < HOST_FAINT_MAG))
    if len(hosts) == 0:
        return None

    def propose() -> tuple[np.ndarray, float | None]:
        host = int(rng.choice(hosts))
        scale_px = galaxies.half_light_arcsec[host] / pixel_scale_arcsec
        radius = rng.gamma(2.0, scale_px / EXPONENTIAL_HALF_LIGHT_SCALES)
        along, across = radius * np.array([1.0, galaxies.axis_ratio[host]])
        phase = rng.uniform(0.0, 2.0 * np.pi)
        angle = np.deg2rad(galaxies.position_angle_deg[host])
        major, minor = along * np.cos(phase), across * np.sin(phase)
        offset = np.array(
            [
                major * np.cos(angle) - minor * np.sin(angle),
                major * np.sin(angle) + minor * np.cos(angle),
            ]
        )
        xy = np.array([x[host], y[host]]) + offset
        xy = np.clip(xy, clearance_px, [width - clearance_px, height - clearance_px])
        return xy, float(np.hypot(*(xy - [x[host], y[host]])) * pixel_scale_arcsec)

    return propose


def _transient_positions(
    proposals: list[list[Proposal]],
    flux_e: np.ndarray,
    star_xy: np.ndarray,
    star_e: np.ndarray,
    clearance_px: float,
) -> tuple[np.ndarray, list[float | None]]:
    """Positions (n x 2, x then y), one for each transient from the first of its proposals
    that finds room (a host may have none left), clear of bright stars and of each other; and
    each one's offset from its host."""
    placed: list[np.ndarray] = []
    offsets: list[float | None] = []
    for choices, flux in zip(proposals, flux_e, strict=True):
        neighbours = star_xy[star_e > 0.1 * flux]
        for propose in (propose for propose in choices for _ in range(PLACEMENT_TRIES)):
            xy, offset = propose()
            others = np.vstack([neighbours, *placed]) if placed else neighbours
            if len(others) == 0 or np.min(np.hypot(*(others - xy).T)) > clearance_px:
                placed.append(xy)
                offsets.append(offset)
                break
        else:
            raise ValueError("field too crowded to place the transients clear of stars")
    return np.array(placed).reshape(-1, 2), offsets


def _galaxy_light_under(
    xy: np.ndarray,
    galaxies: GalaxyCatalogue,
    wcs: WCS,
    camera: SimCamera,
    air: float,
    psf_core: np.ndarray,
) -> np.ndarray:
    """Galaxy electrons per pixel under each position (n x 2), as PSF photometry there weighs
    them: the galaxies' light blurred by the PSF, averaged with the weights `p^2` of the PSF's
    pixels (clear sky; it is noise a host adds to its transient's measurement). Only a window
    around each position is rendered, from the galaxies whose light reaches it."""
    galaxy_x, galaxy_y = galaxies.pixel_positions(wcs)
    electrons = camera.source_electrons(galaxies.mag, air)
    reach = 2 * (psf_core.shape[0] // 2)
    weights = psf_core**2 / np.sum(psf_core**2)
    under = np.empty(len(xy))
    for index, (column, row) in enumerate(np.rint(xy).astype(int)):
        window = render_galaxy_light(
            (2 * reach + 1, 2 * reach + 1),
            galaxy_x - (column - reach),
            galaxy_y - (row - reach),
            electrons,
            galaxies,
            camera.pixel_scale_arcsec,
        )
        blurred = fftconvolve(window, psf_core, mode="valid")
        under[index] = float(np.sum(blurred * weights))
    return under


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
    galaxies: GalaxyCatalogue | None = None,
    hosted_fraction: float = 0.0,
) -> list[InjectedTransient]:
    """Draw `count` transients for a new frame, their S/N log-uniform in `snr_range`; each
    lies on one of the `galaxies` with probability `hosted_fraction` (if any can host)."""
    low, high = snr_range
    if not 0 < low <= high:
        raise ValueError(f"snr_range must be 0 < low <= high, not {snr_range}")
    if not 0.0 <= hosted_fraction <= 1.0:
        raise ValueError(f"hosted_fraction must be within 0..1, not {hosted_fraction}")
    shape = (camera.height_px, camera.width_px)
    psf = frame_psf(conditions, camera)
    snr = np.exp(rng.uniform(np.log(low), np.log(high), count))
    fwhm_px = conditions.seeing_fwhm_arcsec / camera.pixel_scale_arcsec
    typical_var = float(camera.sky_electrons_per_px(conditions.sky_mag_arcsec2))
    first_guess = transient_flux_e(snr, typical_var, psf.noise_equivalent_area_px())
    star_xy = np.column_stack(stars.pixel_positions(new_wcs))
    clearance = max(4.0 * fwhm_px, psf.core.shape[0] / 2.0)
    anywhere = _anywhere(rng, shape, clearance)
    on_hosts = (
        _on_hosts(rng, galaxies, new_wcs, camera.pixel_scale_arcsec, shape, clearance)
        if galaxies is not None and hosted_fraction > 0.0
        else None
    )
    hosted = rng.random(count) < hosted_fraction
    proposals = [[on_hosts, anywhere] if on_hosts is not None and h else [anywhere] for h in hosted]
    xy, host_offsets = _transient_positions(
        proposals, first_guess, star_xy, camera.source_electrons(stars.mag, air), clearance
    )
    variance = sky_electrons(xy[:, 0], xy[:, 1], conditions, camera) + camera.read_noise_e**2
    if galaxies is not None:
        variance = variance + _galaxy_light_under(xy, galaxies, new_wcs, camera, air, psf.core)
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
            host_offset_arcsec=host_offsets[i],
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
    hosted_fraction: float = 0.0,
) -> SimulatedPair:
    """A reference and a new frame of one field (new taken at `date_obs`, pointed up to
    `max_offset_px` away) with `n_transients` transients in the new frame only, a
    `hosted_fraction` of them on galaxies.
    Long because its random draws must stay in this order: a seed gives the same pair as before
    (the shipped models' training sets and the benchmarks' seeds are these pairs)."""
    ra_deg, dec_deg, altitude = pointing_or_random(rng, ra_deg, dec_deg, date_obs, site)
    air = airmass(altitude)
    reference_wcs = tan_wcs(camera, ra_deg, dec_deg)
    margin_px = 32 + int(np.ceil(max_offset_px))
    stars = draw_star_catalogue(
        rng,
        reference_wcs,
        faint_mag=float(camera.source_magnitude(FAINTEST_STAR_E, air)),
        margin_px=margin_px,
    )
    galaxies = draw_galaxy_catalogue(
        rng,
        reference_wcs,
        faint_mag=float(camera.source_magnitude(FAINTEST_GALAXY_E, air)),
        margin_px=margin_px,
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
        galaxies=galaxies,
        hosted_fraction=hosted_fraction,
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
        galaxies=galaxies,
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
        galaxies=galaxies,
        transients=transients,
        object_name=field_name(ra_deg, dec_deg),
    )
    return SimulatedPair(reference=reference, new=new, transients=transients)

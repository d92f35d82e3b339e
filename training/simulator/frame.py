"""One simulated exposure, end to end: conditions, camera and pointing in; raw frame and truth out.

The light path: stars and galaxies (dimmed by airmass extinction, clouds and vignetting),
satellite trails and injected transients are blurred by the PSF and laid over the sky
background; dark charge and the camera's hot pixels are added; photon noise is drawn; cosmic
rays hit; saturated charge bleeds along columns; the ADC adds read noise and bias and writes
16-bit integers. The frame's label is the worst grade of its conditions and of the
saturated-pixel fraction measured on the result.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from imaging.quality_thresholds import QualityThresholds, worst
from protos import SiteLocation
from training.simulator.camera import SimCamera
from training.simulator.conditions import ObservingConditions, label_conditions
from training.simulator.defects import (
    PixelHits,
    cosmic_rays,
    hot_pixels,
    satellite_trails,
    trail_samples,
)
from training.simulator.detector import bleed_columns, digitize, photon_noise
from training.simulator.galaxies import (
    GalaxyCatalogue,
    draw_galaxy_catalogue,
    render_galaxy_light,
)
from training.simulator.header import frame_header
from training.simulator.pointing import (
    DEFAULT_SITE_LOCATION,
    MIN_ALTITUDE_DEG,
    airmass,
    altitude_deg,
    observable_pointing,
    tan_wcs,
)
from training.simulator.psf import PsfModel, build_psf
from training.simulator.render import render_point_sources
from training.simulator.sky import (
    cloud_field,
    illumination,
    sample_grid,
    sky_gradient,
    transmission_grid,
)
from training.simulator.starfield import StarCatalogue, draw_star_catalogue
from training.simulator.truth import FrameTruth, InjectedTransient

FAINTEST_STAR_E = 20.0
"""Stars are drawn down to the magnitude that gives this many electrons: far below detection."""
FAINTEST_GALAXY_E = 200.0
"""Galaxies are drawn down to the magnitude that gives this many electrons, spread over tens of
pixels: far below the sky noise (fainter ones only add to the background)."""


@dataclass(frozen=True)
class SimulatedFrame:
    """A raw frame (uint16, rows x columns), its FITS header, its truth, WCS and the star and
    galaxy catalogues of its field."""

    data: np.ndarray
    header: fits.Header
    truth: FrameTruth
    wcs: WCS
    stars: StarCatalogue
    galaxies: GalaxyCatalogue


def frame_psf(conditions: ObservingConditions, camera: SimCamera) -> PsfModel:
    """The PSF of a frame taken under these conditions with this camera."""
    return build_psf(
        seeing_fwhm_arcsec=conditions.seeing_fwhm_arcsec,
        moffat_beta=conditions.moffat_beta,
        trailing_arcsec=conditions.trailing_arcsec,
        trail_angle_deg=conditions.trail_angle_deg,
        defocus_arcsec=conditions.defocus_arcsec,
        pixel_scale_arcsec=camera.pixel_scale_arcsec,
    )


def sky_electrons(
    x: np.ndarray, y: np.ndarray, conditions: ObservingConditions, camera: SimCamera
) -> np.ndarray:
    """Expected sky plus dark electrons at pixel positions (x, y) (broadcasting)."""
    shape = (camera.height_px, camera.width_px)
    sky = camera.sky_electrons_per_px(conditions.sky_mag_arcsec2) * sky_gradient(
        x, y, shape, conditions.sky_gradient_fraction, conditions.sky_gradient_angle_deg
    )
    dark = camera.dark_current_e_per_s * camera.exptime_s
    return sky * illumination(x, y, shape, camera.vignetting_fraction) + dark


def pointing_or_random(
    rng: np.random.Generator,
    ra_deg: float | None,
    dec_deg: float | None,
    date_obs: datetime,
    site: SiteLocation,
) -> tuple[float, float, float]:
    """The pointing (ra, dec) and its altitude: the given one if it is up, else a random field."""
    if date_obs.tzinfo is None:
        raise ValueError("date_obs must be timezone-aware (UTC)")
    if (ra_deg is None) != (dec_deg is None):
        raise ValueError("give both ra_deg and dec_deg, or neither")
    if ra_deg is None or dec_deg is None:
        ra_deg, dec_deg = observable_pointing(rng, date_obs, site)
    altitude = altitude_deg(ra_deg, dec_deg, date_obs, site)
    if altitude < MIN_ALTITUDE_DEG:
        raise ValueError(
            f"RA {ra_deg:.4f} Dec {dec_deg:.4f} is at altitude {altitude:.1f} deg at "
            f"{date_obs.isoformat()} from lat {site.lat_deg} lon {site.lon_deg}: below "
            f"{MIN_ALTITUDE_DEG} deg; leave ra_deg/dec_deg out to get a field that is up"
        )
    return ra_deg % 360.0, dec_deg, altitude


@dataclass(frozen=True)
class LightSources:
    """Every source of light on the detector: points (stars, satellite-trail samples, transients)
    as (x, y, electrons) with the stars first, the galaxies' light before the PSF, and the cloud
    grid that dimmed them."""

    x: np.ndarray
    y: np.ndarray
    electrons: np.ndarray
    galaxy_light: np.ndarray
    clouds: np.ndarray


def _light_sources(
    rng: np.random.Generator,
    conditions: ObservingConditions,
    camera: SimCamera,
    wcs: WCS,
    sky_objects: tuple[StarCatalogue, GalaxyCatalogue],
    air: float,
    transients: Sequence[InjectedTransient],
) -> LightSources:
    """The frame's light: stars, galaxies and satellites dimmed by extinction, clouds and
    vignetting, and the transients (given in detector electrons already)."""
    stars, galaxies = sky_objects
    shape = (camera.height_px, camera.width_px)
    clouds = transmission_grid(
        cloud_field(rng, shape), conditions.transparency, conditions.cloud_patchiness
    )
    star_x, star_y = stars.pixel_positions(wcs)
    galaxy_x, galaxy_y = galaxies.pixel_positions(wcs)
    trails = [
        trail_samples(trail, shape)
        for trail in satellite_trails(rng, conditions.satellite_trails, shape)
    ]
    x = np.concatenate([star_x, *(t[0] for t in trails), galaxy_x])
    y = np.concatenate([star_y, *(t[1] for t in trails), galaxy_y])
    electrons = np.concatenate(
        [
            camera.source_electrons(stars.mag, air),
            *(t[2] for t in trails),
            camera.source_electrons(galaxies.mag, air),
        ]
    )
    electrons *= sample_grid(clouds, x, y, shape)
    electrons *= illumination(x, y, shape, camera.vignetting_fraction)
    points = len(x) - len(galaxies)
    galaxy_light = render_galaxy_light(
        shape, galaxy_x, galaxy_y, electrons[points:], galaxies, camera.pixel_scale_arcsec
    )
    x, y, electrons = x[:points], y[:points], electrons[:points]
    if transients:
        t_x, t_y = wcs.all_world2pix(
            [t.ra_deg for t in transients], [t.dec_deg for t in transients], 0
        )
        x, y = np.concatenate([x, t_x]), np.concatenate([y, t_y])
        electrons = np.concatenate([electrons, [t.flux_e for t in transients]])
    return LightSources(x, y, electrons, galaxy_light, clouds)


def _expose(
    rng: np.random.Generator,
    expected: np.ndarray,
    camera: SimCamera,
) -> tuple[np.ndarray, PixelHits, PixelHits]:
    """Expected electrons to a raw uint16 frame; also the hot pixels and cosmic-ray hits."""
    hot = hot_pixels(camera)
    np.add.at(expected, (hot.y, hot.x), hot.electrons.astype(np.float32))
    electrons = photon_noise(rng, expected)
    hits = cosmic_rays(rng, camera)
    np.add.at(electrons, (hits.y, hits.x), hits.electrons.astype(np.float32))
    data = digitize(
        rng,
        bleed_columns(electrons, camera.full_well_e),
        gain_e_per_adu=camera.gain_e_per_adu,
        read_noise_e=camera.read_noise_e,
        bias_adu=camera.bias_adu,
        saturation_adu=camera.saturation_adu,
    )
    return data, hot, hits


def simulate_frame(
    conditions: ObservingConditions,
    camera: SimCamera,
    *,
    date_obs: datetime,
    site_name: str,
    rng: np.random.Generator,
    ra_deg: float | None = None,
    dec_deg: float | None = None,
    stars: StarCatalogue | None = None,
    galaxies: GalaxyCatalogue | None = None,
    site: SiteLocation = DEFAULT_SITE_LOCATION,
    transients: Sequence[InjectedTransient] = (),
    thresholds: QualityThresholds | None = None,
    object_name: str | None = None,
) -> SimulatedFrame:
    """Simulate one raw frame. Without ra/dec it points at a random field well above the horizon;
    without `stars` or `galaxies` it draws the field's own; `transients` are added at their
    ra/dec."""
    ra_deg, dec_deg, altitude = pointing_or_random(rng, ra_deg, dec_deg, date_obs, site)
    shape = (camera.height_px, camera.width_px)
    wcs = tan_wcs(camera, ra_deg, dec_deg)
    air = airmass(altitude)
    if stars is None:
        faint = float(camera.source_magnitude(FAINTEST_STAR_E, air))
        stars = draw_star_catalogue(rng, wcs, faint_mag=faint)
    if galaxies is None:
        faint = float(camera.source_magnitude(FAINTEST_GALAXY_E, air))
        galaxies = draw_galaxy_catalogue(rng, wcs, faint_mag=faint)
    light = _light_sources(rng, conditions, camera, wcs, (stars, galaxies), air, transients)
    sky_e = camera.sky_electrons_per_px(conditions.sky_mag_arcsec2)
    background = sky_electrons(
        np.arange(shape[1], dtype=np.float32),
        np.arange(shape[0], dtype=np.float32)[:, None],
        conditions,
        camera,
    )
    sources_e = render_point_sources(
        shape,
        light.x,
        light.y,
        light.electrons,
        frame_psf(conditions, camera),
        sky_noise_e=float(np.sqrt(sky_e + camera.read_noise_e**2)),
        extended=light.galaxy_light,
    )
    data, hot, hits = _expose(rng, background + sources_e, camera)

    thresholds = thresholds or QualityThresholds()
    saturated_fraction = float(np.mean(data >= min(camera.saturation_adu, 65535)))
    _, grades = label_conditions(conditions, thresholds)
    grades["saturated_fraction"] = thresholds.saturated_fraction.grade(saturated_fraction)
    star_x, star_y = light.x[: len(stars)], light.y[: len(stars)]
    in_frame = (star_x >= -0.5) & (star_x < shape[1] - 0.5)
    in_frame &= (star_y >= -0.5) & (star_y < shape[0] - 0.5)
    truth = FrameTruth(
        label=worst(list(grades.values())),
        grades=grades,
        conditions=conditions,
        camera=camera,
        site_name=site_name,
        site=site,
        date_obs=date_obs,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        altitude_deg=altitude,
        airmass=air,
        sky_e_per_px=sky_e,
        mean_transmission=float(light.clouds.mean()),
        saturated_fraction=saturated_fraction,
        stars_in_frame=int(in_frame.sum()),
        cosmic_rays=len(hits),
        hot_pixels=len(hot),
        transients=list(transients),
    )
    header = frame_header(truth, wcs, object_name)
    return SimulatedFrame(
        data=data, header=header, truth=truth, wcs=wcs, stars=stars, galaxies=galaxies
    )

"""Simulated skies for the image tests: a field of stars of known seeing and shape on a flat
noisy sky, and a frame of a real field under given conditions with that field's catalogue."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.wcs import WCS

from imaging.gaussian import FWHM_PER_SIGMA
from training.simulator import ObservingConditions, SimCamera, simulate_frame, write_frame
from training.simulator.catalogue import write_field_catalogue
from training.simulator.frame import FAINTEST_GALAXY_E, FAINTEST_STAR_E, SimulatedFrame
from training.simulator.galaxies import draw_galaxy_catalogue
from training.simulator.pointing import tan_wcs
from training.simulator.starfield import draw_star_catalogue

SKY_ADU = 1000.0
NOISE_ADU = 10.0
NIGHT = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
FIELD = {"ra_deg": 133.0, "dec_deg": -30.0}  # high over La Silla that night, b = 9 deg
CAMERA = SimCamera(width_px=1024, height_px=1024)


def star_field(
    shape=(1024, 1024),
    stars=300,
    fwhm_px=4.0,
    axis_ratio=1.0,
    angle_deg=30.0,
    peaks_adu=(300.0, 20000.0),
    moffat_beta: float | None = None,
    seed=0,
) -> np.ndarray:
    """Sky with noise and elliptical stars of one FWHM (major axis) and axis ratio: Gaussian, or
    Moffat with exponent `moffat_beta` (the broad-winged profile of real seeing)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(SKY_ADU, NOISE_ADU, shape)
    sigma_major = fwhm_px / FWHM_PER_SIGMA
    sigma_minor = sigma_major * axis_ratio
    angle = np.radians(angle_deg)
    radius = int(np.ceil((5 if moffat_beta is None else 12) * sigma_major))
    offsets = np.arange(-radius, radius + 1)
    margin = radius + 1
    rows = rng.uniform(margin, shape[0] - margin, stars)
    columns = rng.uniform(margin, shape[1] - margin, stars)
    peaks = np.exp(rng.uniform(*np.log(peaks_adu), stars))
    for row, column, peak in zip(rows, columns, peaks, strict=True):
        top, left = int(row), int(column)
        dy = offsets[:, np.newaxis] - (row - top)
        dx = offsets[np.newaxis, :] - (column - left)
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        scaled_r2 = (along / sigma_major) ** 2 + (across / sigma_minor) ** 2
        if moffat_beta is None:
            stamp = peak * np.exp(-0.5 * scaled_r2)
        else:  # same FWHM: (1 + r2 / alpha2) ** -beta is half its peak at the Gaussian's HWHM
            half_r2 = 2 * np.log(2)
            stamp = peak * (1 + scaled_r2 / half_r2 * (2 ** (1 / moffat_beta) - 1)) ** -moffat_beta
        image[top - radius : top + radius + 1, left - radius : left + radius + 1] += stamp
    return image.astype(np.float32)


def observe(folder: Path, conditions: ObservingConditions, seed: int = 1) -> Path:
    """A frame under `conditions`, written with its field's catalogue into `folder`."""
    frame = _simulated(conditions, seed)
    write_field_catalogue(frame, folder / "catalogues", np.random.default_rng(seed))
    return write_frame(frame, folder / f"frame-{seed}.fits")


def observe_field(folder: Path, conditions: ObservingConditions, seed: int) -> Path:
    """A frame of one fixed field (the same stars and galaxies each time, drawn once) under
    `conditions`, with noise of its own from `seed`."""
    wcs = tan_wcs(CAMERA, **FIELD)
    field_rng = np.random.default_rng(0)
    stars = draw_star_catalogue(
        field_rng, wcs, faint_mag=float(CAMERA.source_magnitude(FAINTEST_STAR_E, 1.0))
    )
    galaxies = draw_galaxy_catalogue(
        field_rng, wcs, faint_mag=float(CAMERA.source_magnitude(FAINTEST_GALAXY_E, 1.0))
    )
    frame = _simulated(conditions, seed, stars=stars, galaxies=galaxies)
    return write_frame(frame, folder / f"field-{seed}.fits")


def _simulated(conditions: ObservingConditions, seed: int, **field: object) -> SimulatedFrame:
    """A frame of `FIELD` from La Silla on `NIGHT` (its own stars and galaxies unless given)."""
    return simulate_frame(
        conditions,
        CAMERA,
        date_obs=NIGHT,
        site_name="la-silla",
        rng=np.random.default_rng(seed),
        **FIELD,
        **field,
    )


def sky_wcs(width: int, height: int) -> WCS:
    """A TAN WCS of 0.5″ pixels centred on the frame, at RA 150°, Dec -30°."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    wcs.wcs.cdelt = [-0.5 / 3600, 0.5 / 3600]
    return wcs

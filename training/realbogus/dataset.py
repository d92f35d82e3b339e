"""Labelled triplets for the real/bogus CNN, from the site's own path on simulated pairs.

Each pair (`simulate_search_pair`) is a new frame with injected transients (some on galaxies)
and artefacts and a reference combined from 1-3 earlier epochs of the same field, with a random
pixel scale so the PSF spans 1.5-7 px. Each transient's S/N is known twice: on the new frame
alone (`snr`, as injected) and in the best difference that frame and its reference allow
(`difference_snr`).
`find_candidates` (the site's code) runs on it with a low threshold; a detection within
`MATCH_RADIUS_FWHM` FWHM of an injected transient is real, every other one is bogus (dipoles of
bright stars, cosmic rays, hot pixels, trails, edges, noise). Splits are by pair, so no field is
in two splits. Arrays are cached as `.npz` files.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from imaging.fits_reader import Frame
from imaging.gaussian import MAD_TO_SIGMA
from imaging.transients.config import TransientSearchSettings
from imaging.transients.references import Reference, build_reference
from imaging.transients.search import SearchSkipped, find_candidates
from imaging.transients.sources import find_stars, subtract_background
from protos import FrameIdentity, QualityLabel
from training.realbogus.artefacts import (
    add_cosmic_rays,
    add_hot_pixels,
    add_satellite_trail,
    add_star_dipoles,
)
from training.simulator.camera import SimCamera
from training.simulator.conditions import sample_conditions
from training.simulator.frame import SimulatedFrame, frame_psf, simulate_frame
from training.simulator.pairs import simulate_pair
from training.simulator.truth import InjectedTransient

MATCH_RADIUS_FWHM = 0.7
TRAINING_SEARCH = TransientSearchSettings(
    detection_sigma=3.5, min_snr=3.0, max_detections_per_mpx=8000.0
)
"""A looser search than the site's, so the classifier sees the borderline cases too."""
HOSTED_FRACTION = 0.4
"""Transients of a simulated search that lie on galaxies, as supernovae do."""
STACK_SMOOTHING_PX = (0.5, 1.0)
"""The Gaussian (sigma, px) by which a simulated stack's pixels are smoothed."""
STACKED_FRACTION = 0.3
"""Training pairs that look like resampled stacks (the bench's pairs are single frames)."""
MAX_DIPOLES = 15
DIPOLE_STAR_SNR = 30.0
"""Stars this bright or brighter may be moved a little in the new frame (`add_star_dipoles`)."""
FIRST_REAL_PAIR = 1_000_000
"""Pair numbers from here on are real alerts or the sites' samples, not simulated pairs: their
stamps are in another camera's units, so they are never laid over simulated hosts."""


@dataclass(frozen=True)
class SearchPair:
    """A new frame, the reference to search it against, and the truth of its transients:
    `difference_snr[i]` is transient i's S/N in the best possible difference image
    (`ideal_difference_snr`), at most its `snr` on the new frame alone."""

    new: Frame
    reference: Reference
    transients: list[InjectedTransient]
    difference_snr: np.ndarray


@dataclass(frozen=True)
class Triplets:
    """Raw stamps `[N, 3, S, S]`, labels (1 real, 0 bogus), true S/N (0 for bogus), pair index."""

    stamps: np.ndarray
    labels: np.ndarray
    snr: np.ndarray
    pair: np.ndarray

    def save(self, path: Path) -> Path:
        """Write the arrays to one `.npz` file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, stamps=self.stamps, labels=self.labels, snr=self.snr, pair=self.pair
        )
        return path

    @classmethod
    def load(cls, path: Path) -> "Triplets":
        """Read arrays written by `save`."""
        with np.load(path) as arrays:
            return cls(arrays["stamps"], arrays["labels"], arrays["snr"], arrays["pair"])

    def select(self, keep: np.ndarray) -> "Triplets":
        """The rows where `keep` is true (or the given indices)."""
        return Triplets(self.stamps[keep], self.labels[keep], self.snr[keep], self.pair[keep])

    @classmethod
    def joined(cls, parts: list["Triplets"]) -> "Triplets":
        """The rows of all `parts`, in order."""
        return cls(
            np.concatenate([p.stamps for p in parts]).astype(np.float32),
            np.concatenate([p.labels for p in parts]).astype(np.int64),
            np.concatenate([p.snr for p in parts]),
            np.concatenate([p.pair for p in parts]).astype(np.int64),
        )


def frame_from_simulated(
    sim: SimulatedFrame, file_name: str, data: np.ndarray | None = None
) -> Frame:
    """A site `Frame` in memory from a simulated one (optionally with altered pixels)."""
    pixels = np.asarray(sim.data if data is None else data, dtype=np.float32)
    header = fits.Header(sim.header)
    camera = sim.truth.camera
    identity = FrameIdentity(
        file_name=file_name,
        sha256=hashlib.sha256(pixels.tobytes()).hexdigest(),
        date_obs=sim.truth.date_obs,
        exptime_s=camera.exptime_s,
        filter=camera.filter_name,
        width_px=pixels.shape[1],
        height_px=pixels.shape[0],
    )
    return Frame(
        path=Path(file_name),
        data=pixels,
        header=header,
        wcs=sim.wcs,
        identity=identity,
        pixel_scale_arcsec=camera.pixel_scale_arcsec,
        saturation_adu=camera.saturation_adu,
    )


def stack_like(data: np.ndarray, smoothing_px: float) -> np.ndarray:
    """A frame as float32, its pixels smoothed by a Gaussian of `smoothing_px` (0: as it is):
    what resampling and combining dithered exposures into a stack does to the noise (it
    correlates it over a few pixels) and, a little, to the PSF."""
    pixels = np.asarray(data, dtype=np.float32)
    return ndimage.gaussian_filter(pixels, smoothing_px) if smoothing_px > 0 else pixels.copy()


def simulate_search_pair(
    rng: np.random.Generator,
    *,
    size_px: int = 1024,
    n_transients: int = 25,
    snr_range: tuple[float, float] = (3.0, 60.0),
    reference_epochs: int = 3,
    artefacts: bool = True,
    pixel_scale_arcsec: float | None = None,
    hosted_fraction: float = HOSTED_FRACTION,
    stacked_fraction: float = 0.0,
) -> SearchPair:
    """One simulated search: a new frame with transients (a `hosted_fraction` of them on
    galaxies, and artefacts) and its reference. With probability `stacked_fraction` both look
    like resampled stacks (`stack_like`), as survey images such as the DECam pair do."""
    stacked = stacked_fraction > 0 and rng.random() < stacked_fraction
    smoothing_px = float(rng.uniform(*STACK_SMOOTHING_PX)) if stacked else 0.0
    scale = pixel_scale_arcsec or float(rng.uniform(0.45, 1.1))
    camera = SimCamera(width_px=size_px, height_px=size_px, pixel_scale_arcsec=scale)
    pair = simulate_pair(
        camera,
        n_transients=n_transients,
        snr_range=snr_range,
        rng=rng,
        hosted_fraction=hosted_fraction,
    )
    epochs = [pair.reference]
    for epoch in range(1, reference_epochs):
        epochs.append(
            simulate_frame(
                sample_conditions(rng, QualityLabel.GOOD),
                camera,
                date_obs=pair.reference.truth.date_obs - timedelta(days=epoch),
                site_name=pair.reference.truth.site_name,
                rng=rng,
                ra_deg=pair.reference.truth.ra_deg,
                dec_deg=pair.reference.truth.dec_deg,
                stars=pair.reference.stars,
                galaxies=pair.reference.galaxies,
            )
        )
    named = {f"ref-{i}.fits": epoch for i, epoch in enumerate(epochs)}
    reference = build_reference(
        [
            frame_from_simulated(e, name, stack_like(e.data, smoothing_px))
            for name, e in named.items()
        ]
    )
    data = stack_like(pair.new.data, smoothing_px)
    if artefacts:
        noise = float(np.sqrt(pair.new.truth.sky_e_per_px) / camera.gain_e_per_adu)
        add_hot_pixels(data, rng, int(rng.integers(0, 30)), noise)
        add_cosmic_rays(data, rng, int(rng.integers(0, 30)), noise)
        fwhm_px = pair.new.truth.conditions.seeing_fwhm_arcsec / scale
        if rng.random() < 0.3:
            add_satellite_trail(data, rng, noise, fwhm_px)
        stars = find_stars(subtract_background(pair.new.data), min_snr=DIPOLE_STAR_SNR)
        chosen = rng.permutation(len(stars))[: int(rng.integers(0, MAX_DIPOLES + 1))]
        add_star_dipoles(data, rng, stars.xy[chosen], stars.flux[chosen], fwhm_px)
    return SearchPair(
        frame_from_simulated(pair.new, "new.fits", data),
        reference,
        pair.transients,
        transient_difference_snr(pair.transients, pair.new, named, reference),
    )


def ideal_difference_snr(
    flux: np.ndarray,
    new_variance: np.ndarray,
    reference_variance: np.ndarray,
    new_psf: np.ndarray,
    reference_psf: np.ndarray,
) -> np.ndarray:
    """S/N of point sources of `flux` in the proper difference image of Zackay, Ofek & Gal-Yam
    (2016), the most any subtraction of the two images keeps: summed over spatial frequencies,
    `S/N^2 = flux^2 / N * sum |Pn|^2 |Pr|^2 / (var_r |Pn|^2 + var_n |Pr|^2)` for PSFs `Pn`, `Pr`
    (odd square stamps summing to one) and white-noise variances per pixel `var_n`, `var_r`
    (one per source, in the units of `flux` squared). Without reference noise it is the new
    frame's own PSF-photometry S/N, `flux / sqrt(var_n * noise-equivalent area)`."""
    side = 2 * max(new_psf.shape[0], reference_psf.shape[0]) + 1
    power_new = np.abs(np.fft.fft2(_centred(new_psf, side))) ** 2
    power_ref = np.abs(np.fft.fft2(_centred(reference_psf, side))) ** 2
    information = [
        np.sum(power_new * power_ref / (var_r * power_new + var_n * power_ref)) / side**2
        for var_n, var_r in zip(
            np.atleast_1d(new_variance), np.atleast_1d(reference_variance), strict=True
        )
    ]
    return np.asarray(flux) * np.sqrt(information)


def _centred(stamp: np.ndarray, side: int) -> np.ndarray:
    """An odd square `stamp` zero-padded to `side` x `side` around the same centre."""
    padded = np.zeros((side, side))
    start = (side - stamp.shape[0]) // 2
    padded[start : start + stamp.shape[0], start : start + stamp.shape[1]] = stamp
    return padded


def transient_difference_snr(
    transients: list[InjectedTransient],
    new: SimulatedFrame,
    epochs: dict[str, SimulatedFrame],
    reference: Reference,
) -> np.ndarray:
    """Each transient's `ideal_difference_snr` against `reference`, built from `epochs` (by the
    file name each was given; the reference's first member is the one it is scaled to).

    In the new frame's electrons: its true PSF, and the white-noise variance that gives each
    transient its injected S/N (sky, dark and read noise and its own photons). The reference's
    empirical PSF and its noise map at the transient, brought to the new frame's electrons by
    the true throughput (airmass, mean transmission) of the new frame and of the epoch the
    reference is scaled to, as a subtraction does with the stars both images hold.
    """
    if not transients:
        return np.zeros(0)
    camera = new.truth.camera
    psf = frame_psf(new.truth.conditions, camera)
    flux = np.array([t.flux_e for t in transients])
    snr = np.array([t.snr for t in transients])
    new_variance = flux**2 / (snr**2 * psf.noise_equivalent_area_px())
    anchor = epochs[reference.info.members[0].file_name]

    def throughput(frame: SimulatedFrame) -> float:
        return float(camera.source_electrons(0.0, frame.truth.airmass))

    e_per_reference_adu = (
        camera.gain_e_per_adu
        * (throughput(new) * new.truth.mean_transmission)
        / (throughput(anchor) * anchor.truth.mean_transmission)
    )
    height, width = reference.image.shape
    column = np.clip(np.rint([t.ref_x_px for t in transients]).astype(int), 0, width - 1)
    row = np.clip(np.rint([t.ref_y_px for t in transients]).astype(int), 0, height - 1)
    noise_adu = (
        reference.noise[row, column]
        if reference.noise is not None
        else np.full(len(transients), reference.info.noise_adu)
    )
    reference_variance = (noise_adu.astype(np.float64) * e_per_reference_adu) ** 2
    return ideal_difference_snr(flux, new_variance, reference_variance, psf.core, reference.psf)


def label_detections(
    x: np.ndarray, y: np.ndarray, transients: list[InjectedTransient], radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each detection: 1 if within `radius_px` of an injected transient, and its true S/N."""
    labels = np.zeros(len(x), dtype=np.int64)
    snr = np.zeros(len(x))
    for transient in transients:
        distance = np.hypot(x - transient.x_px, y - transient.y_px)
        if len(distance) and distance.min() <= radius_px:
            nearest = int(np.argmin(distance))
            labels[nearest] = 1
            snr[nearest] = transient.snr
    return labels, snr


def triplets_of_pair(
    search: SearchPair, index: int, settings: TransientSearchSettings = TRAINING_SEARCH
) -> Triplets | None:
    """Every detection of one pair with its label, or None if the site would skip the pair."""
    try:
        detections = find_candidates(search.new, search.reference, settings)
    except SearchSkipped:
        return None
    m = detections.measurements
    radius = max(2.0, MATCH_RADIUS_FWHM * detections.difference.psf_fwhm_px)
    labels, snr = label_detections(m.x, m.y, search.transients, radius)
    return Triplets(detections.stamps, labels, snr, np.full(len(labels), index))


def _centre_excess(stamps: np.ndarray) -> np.ndarray:
    """Mean of the central 3x3 pixels over the stamp's robust noise, per stamp `[N, S, S]`."""
    half = stamps.shape[-1] // 2
    centre = np.nanmean(stamps[:, half - 1 : half + 2, half - 1 : half + 2], axis=(1, 2))
    median = np.nanmedian(stamps, axis=(1, 2))
    mad = np.nanmedian(np.abs(stamps - median[:, None, None]), axis=(1, 2))
    return (centre - median) / np.maximum(MAD_TO_SIGMA * mad, 1e-6)


def with_hosted_reals(triplets: Triplets, rng: np.random.Generator, fraction: float) -> Triplets:
    """Add copies of real triplets laid over stars, as variable stars and supernovae in galaxies.

    Simulated transients keep clear of stars, so without these the classifier would call
    anything with a source under it bogus. Hosts are bogus triplets with a star at their centre
    whose difference left less than a third of the transient's peak; stamps are sky-subtracted,
    so the sum of two triplets is a physical (if slightly noisier) triplet.
    """
    real = np.flatnonzero(triplets.labels == 1)
    bogus = np.flatnonzero(triplets.labels == 0)
    host_strength = _centre_excess(triplets.stamps[bogus, 1])
    hosts = bogus[host_strength > 10.0]
    if len(real) == 0 or len(hosts) == 0:
        return triplets
    chosen_real = rng.choice(real, size=round(fraction * len(real)), replace=True)
    chosen_host = rng.choice(hosts, size=len(chosen_real), replace=True)
    half = triplets.stamps.shape[-1] // 2
    peak_real = triplets.stamps[chosen_real, 2, half, half]
    residual = np.abs(triplets.stamps[chosen_host, 2, half, half])
    keep = np.nan_to_num(residual) < np.nan_to_num(peak_real) / 3.0
    chosen_real, chosen_host = chosen_real[keep], chosen_host[keep]
    hosted = triplets.stamps[chosen_real] + triplets.stamps[chosen_host]
    return Triplets(
        np.concatenate([triplets.stamps, hosted]),
        np.concatenate([triplets.labels, np.ones(len(chosen_real), dtype=np.int64)]),
        np.concatenate([triplets.snr, triplets.snr[chosen_real]]),
        np.concatenate([triplets.pair, triplets.pair[chosen_real]]),
    )


def simulate_triplets(
    pairs: int,
    seed: int,
    *,
    size_px: int = 1024,
    first_index: int = 0,
    stacked_fraction: float = STACKED_FRACTION,
) -> Triplets:
    """Labelled triplets from `pairs` simulated searches (a `stacked_fraction` of them stacks)."""
    rng = np.random.default_rng(seed)
    parts = []
    for index in range(first_index, first_index + pairs):
        pair = simulate_search_pair(rng, size_px=size_px, stacked_fraction=stacked_fraction)
        found = triplets_of_pair(pair, index)
        if found is not None:
            parts.append(found)
    if not parts:
        raise RuntimeError("no simulated pair could be searched")
    return Triplets(
        np.concatenate([p.stamps for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.snr for p in parts]),
        np.concatenate([p.pair for p in parts]),
    )

"""Labelled triplets for the real/bogus CNN, from the site's own path on simulated pairs.

Each pair (`simulate_search_pair`) is a new frame with injected transients and artefacts and a
reference combined from 1-3 earlier epochs of the same field, with a random pixel scale so the
PSF spans 1.5-7 px. `find_candidates` (the site's code) runs on it with a low threshold; a
detection within `MATCH_RADIUS_FWHM` FWHM of an injected transient is real, every other one is
bogus (dipoles of bright stars, cosmic rays, hot pixels, trails, edges, noise). Splits are by
pair, so no field is in two splits. Arrays are cached as `.npz` files.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from protos import FrameIdentity, QualityLabel
from site_agent.fits_reader import Frame
from site_agent.transients.config import TransientSearchSettings
from site_agent.transients.references import Reference, build_reference
from site_agent.transients.search import SearchSkipped, find_candidates
from training.realbogus.artefacts import add_cosmic_rays, add_hot_pixels, add_satellite_trail
from training.simulator.camera import SimCamera
from training.simulator.conditions import sample_conditions
from training.simulator.frame import SimulatedFrame, simulate_frame
from training.simulator.pairs import simulate_pair
from training.simulator.truth import InjectedTransient

MATCH_RADIUS_FWHM = 0.7
TRAINING_SEARCH = TransientSearchSettings(
    detection_sigma=3.5, min_snr=3.0, max_detections_per_mpx=8000.0
)
"""A looser search than the site's, so the classifier sees the borderline cases too."""


@dataclass(frozen=True)
class SearchPair:
    """A new frame, the reference to search it against, and the truth of its transients."""

    new: Frame
    reference: Reference
    transients: list[InjectedTransient]


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


def simulate_search_pair(
    rng: np.random.Generator,
    *,
    size_px: int = 1024,
    n_transients: int = 25,
    snr_range: tuple[float, float] = (3.0, 60.0),
    reference_epochs: int = 3,
    artefacts: bool = True,
    pixel_scale_arcsec: float | None = None,
) -> SearchPair:
    """One simulated search: a new frame with transients (and artefacts) and its reference."""
    scale = pixel_scale_arcsec or float(rng.uniform(0.45, 1.1))
    camera = SimCamera(width_px=size_px, height_px=size_px, pixel_scale_arcsec=scale)
    pair = simulate_pair(camera, n_transients=n_transients, snr_range=snr_range, rng=rng)
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
            )
        )
    reference = build_reference(
        [frame_from_simulated(e, f"ref-{i}.fits") for i, e in enumerate(epochs)]
    )
    data = pair.new.data.astype(np.float32)
    if artefacts:
        noise = float(np.sqrt(pair.new.truth.sky_e_per_px) / camera.gain_e_per_adu)
        add_hot_pixels(data, rng, int(rng.integers(0, 30)), noise)
        add_cosmic_rays(data, rng, int(rng.integers(0, 30)), noise)
        if rng.random() < 0.3:
            fwhm_px = pair.new.truth.conditions.seeing_fwhm_arcsec / scale
            add_satellite_trail(data, rng, noise, fwhm_px)
    return SearchPair(frame_from_simulated(pair.new, "new.fits", data), reference, pair.transients)


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
    return (centre - median) / np.maximum(1.4826 * mad, 1e-6)


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
    pairs: int, seed: int, *, size_px: int = 1024, first_index: int = 0
) -> Triplets:
    """Labelled triplets from `pairs` simulated searches."""
    rng = np.random.default_rng(seed)
    parts = []
    for index in range(first_index, first_index + pairs):
        found = triplets_of_pair(simulate_search_pair(rng, size_px=size_px), index)
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

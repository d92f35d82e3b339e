"""From electrons to a raw frame: photon noise, charge bleeding, read noise, gain and the ADC.

Photon noise is Poisson; above `POISSON_EXACT_BELOW_E` electrons a pixel takes the normal
approximation (indistinguishable there, and ten times faster on 4k frames). A pixel holds at most
its full well: the excess of a saturated star bleeds up and down its column, as in a CCD. The
ADC adds the bias, divides by the gain and clips at the saturation level, giving the unsigned
16-bit integers a real camera writes.
"""

import numpy as np

POISSON_EXACT_BELOW_E = 50.0
"""Mean electrons below which photon noise is drawn exactly from the Poisson distribution."""


def photon_noise(rng: np.random.Generator, electrons: np.ndarray) -> np.ndarray:
    """One noisy realisation of an image of expected electrons (float32)."""
    mean = np.clip(electrons, 0.0, None, dtype=np.float32)
    noisy = rng.standard_normal(mean.shape, dtype=np.float32)
    noisy *= np.sqrt(mean)
    noisy += mean
    faint = mean < POISSON_EXACT_BELOW_E
    noisy[faint] = rng.poisson(mean[faint])
    return noisy


def bleed_columns(electrons: np.ndarray, full_well_e: float) -> np.ndarray:
    """Saturated charge bleeds along its column: each column's excess over the full well fills
    as many more pixels, half above and half below its saturated run."""
    bled = np.array(electrons, dtype=np.float32)
    for column in np.flatnonzero((bled > full_well_e).any(axis=0)):
        values = bled[:, column]
        over = values > full_well_e
        rows = np.flatnonzero(over)
        half_run = int(np.ceil((values[over] - full_well_e).sum() / full_well_e / 2.0))
        values[over] = full_well_e
        values[max(rows[0] - half_run, 0) : rows[0]] = full_well_e
        values[rows[-1] + 1 : rows[-1] + 1 + half_run] = full_well_e
    return bled


def digitize(
    rng: np.random.Generator,
    electrons: np.ndarray,
    *,
    gain_e_per_adu: float,
    read_noise_e: float,
    bias_adu: float,
    saturation_adu: float,
) -> np.ndarray:
    """Read out: add read noise, convert to ADU over the bias, clip at saturation, as uint16."""
    adu = rng.standard_normal(electrons.shape, dtype=np.float32)
    adu *= read_noise_e
    adu += electrons
    adu *= 1.0 / gain_e_per_adu
    adu += bias_adu
    np.rint(adu, out=adu)
    np.clip(adu, 0, min(saturation_adu, 65535), out=adu)
    return adu.astype(np.uint16)

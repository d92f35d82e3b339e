"""Real ZTF alerts as fine-tuning triplets, with the variations real transients show that a few
hundred alerts cannot all hold.

Each training alert is repeated `weight` times (so ~160 alerts count beside thousands of
simulated triplets); each copy is either the alert as it is, or one of two label-preserving
variations, drawn with equal chance:

- a *saturated core*: the new stamp clipped at 30-70 % of its peak above the median, the
  difference losing what was clipped, as a transient of mag 12-14 saturates ZTF's 30 s frames
  (our simulations hold nothing that bright);
- *on a nucleus*: another alert's reference stamp (a real galaxy or star at the stamp centre,
  as `distnr` shows for most alerts) added to both the new and the reference stamp, the
  difference unchanged, as a transient on a galaxy nucleus looks.

Fading alerts (negative differences) come already turned into rising ones by
`training.realbogus.evaluate.alert_triplet`, exactly as the site and `skyfleet realbogus score`
see them. Bogus alerts are varied alike, so neither variation tells the classes apart. All copies
of an alert share its object's pair number, so the training run's own validation split keeps
an object's copies together.
"""

import numpy as np

from training.realbogus.dataset import Triplets
from training.realbogus.real_split import RealAlerts

CLIP_RANGE = (0.3, 0.7)
"""Where a saturated core is clipped, as a fraction of the new stamp's peak above its median."""
HOST_SCALE = (0.5, 2.0)
"""Brightness of the laid-in host relative to its own reference stamp."""


def saturate_core(triplet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of `[3, S, S]` whose new stamp is clipped flat at its bright core and whose
    difference loses the clipped light."""
    new, reference, difference = (np.array(stamp, dtype=np.float32) for stamp in triplet)
    median = float(np.nanmedian(new))
    level = median + rng.uniform(*CLIP_RANGE) * (float(np.nanmax(new)) - median)
    clipped = np.minimum(new, level)
    return np.stack([clipped, reference, difference - (new - clipped)])


def on_host(triplet: np.ndarray, host: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of `[3, S, S]` with the reference stamp `host` (its median removed) added to the
    new and reference stamps: the same transient on that galaxy or star."""
    light = rng.uniform(*HOST_SCALE) * (host - np.nanmedian(host))
    new, reference, difference = triplet
    return np.stack([new + light, reference + light, difference]).astype(np.float32)


def real_triplets(
    alerts: RealAlerts, weight: int, first_pair: int, rng: np.random.Generator
) -> Triplets:
    """`weight` copies of each alert (the first as it is, the others varied), labelled by
    `drb`, an object's copies sharing one pair number from `first_pair` on."""
    names = sorted(set(alerts.objects.tolist()))
    pair_of = {name: first_pair + index for index, name in enumerate(names)}
    stamps = []
    for copy in range(weight):
        for triplet in alerts.stamps:
            kind = 0 if copy == 0 else int(rng.integers(3))
            if kind == 1:
                triplet = saturate_core(triplet, rng)
            elif kind == 2:
                triplet = on_host(triplet, alerts.stamps[rng.integers(len(alerts.stamps)), 1], rng)
            stamps.append(triplet)
    count = len(alerts.stamps) * weight
    return Triplets(
        np.array(stamps, dtype=np.float32).reshape(count, *alerts.stamps.shape[1:]),
        np.tile(alerts.labels, weight),
        np.zeros(count),
        np.tile([pair_of[name] for name in alerts.objects.tolist()], weight).astype(np.int64),
    )

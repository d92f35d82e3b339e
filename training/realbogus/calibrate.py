"""Holding the simulated reals' recall at the site's threshold: a logit offset for a fine-tune.

A fine-tune on real alerts ranks the simulations about as well as the model it started from
(ROC AUC within 0.002), but scores their reals a little lower, so that at the threshold in force
(0.85) it passes 1-2 % fewer of them, which the gate (`training.realbogus.real_gate`) forbids.
`offset_for_recall` finds the smallest shift of the real logit at which the fine-tune passes as
many of the run's own simulated validation reals as its starting model does; `with_real_offset`
adds it to the network's last layer. The site's threshold stays as it is (sites read it from
their settings, not from the model) and the ranking, hence every ROC AUC, is unchanged. The
run's validation pairs are split off its own training data by pair (`split_by_pair`) and are
never the gate's held-out pairs (seed 9001).

Opt-in (`SKYFLEET_RB_HOLD_SIMULATED_RECALL`): the run that used it (docs/transients.md, *Real
alerts*, run 3) passed the gate yet let through three times the transient bench's false
candidates, which the gate does not measure.
"""

import math

import numpy as np
import torch
from torch import nn

from imaging.transients.realbogus import SCORE_BATCH, normalise_triplets
from training.realbogus.dataset import FIRST_REAL_PAIR, Triplets
from training.realbogus.net import RealBogusNet
from training.realbogus.train import RealBogusTrainingSettings, initial_network, split_by_pair

OFFSET_EPSILON = 1e-6
"""Added to the offset found (logit units) so that float rounding cannot leave the last real
needed just below the threshold."""


def real_margins(network: nn.Module, stamps: np.ndarray) -> np.ndarray:
    """Real minus bogus logit of each raw triplet `[N, 3, 31, 31]` (the score is its sigmoid)."""
    margins = []
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(stamps), SCORE_BATCH):
            inputs = torch.from_numpy(normalise_triplets(stamps[start : start + SCORE_BATCH]))
            logits = network(inputs).double()
            margins.append((logits[:, 1] - logits[:, 0]).numpy())
    return np.concatenate(margins) if margins else np.zeros(0)


def offset_for_recall(candidate: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """The smallest offset (>= 0, logit units) at which the `candidate` margins of the reals pass
    `threshold` at least as often as the `reference` margins of the same reals do."""
    cut = math.log(threshold / (1.0 - threshold))
    wanted = int(np.sum(reference >= cut))
    if wanted == 0 or int(np.sum(candidate >= cut)) >= wanted:
        return 0.0
    kth_highest = float(np.sort(candidate)[::-1][wanted - 1])
    return cut - kth_highest + OFFSET_EPSILON


def with_real_offset(network: RealBogusNet, offset: float) -> RealBogusNet:
    """The network with `offset` added to its real logit's bias."""
    last = network.head[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"the network's last layer is a {type(last).__name__}, not a Linear")
    with torch.no_grad():
        last.bias[1] += offset
    return network


def holding_simulated_recall(
    network: RealBogusNet, settings: RealBogusTrainingSettings, threshold: float
) -> tuple[RealBogusNet, float]:
    """The fine-tuned `network` with the offset that keeps its recall of the run's simulated
    validation reals at `threshold` that of `settings.initial_model`, and the offset; as it is
    (offset 0) unless `settings.hold_simulated_recall`."""
    if settings.initial_model is None or not settings.hold_simulated_recall:
        return network, 0.0
    _, validation = split_by_pair(
        Triplets.load(settings.triplets_path), settings.val_fraction, settings.seed
    )
    reals = validation.stamps[(validation.pair < FIRST_REAL_PAIR) & (validation.labels == 1)]
    offset = offset_for_recall(
        real_margins(network, reals),
        real_margins(initial_network(settings.initial_model), reals),
        threshold,
    )
    return with_real_offset(network, offset), offset

"""Quality models for tests: one that sees nothing wrong, and a tiny real network with the
contract's input and output shapes."""

import numpy as np
import torch
from torch import nn

from protos import ModelRef


class AlwaysGood:
    """A quality model that sees nothing wrong, so photometry alone decides the floor."""

    ref = ModelRef(name="quality", version="always-good")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(np.array([0.9, 0.08, 0.02], dtype=np.float32), (len(batch), 1))


class TinyQualityNet(nn.Module):
    """A small real CNN with the contract's input and output shapes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Conv2d(1, 4, kernel_size=5, stride=4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(x)).mean(dim=(2, 3)))

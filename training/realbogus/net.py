"""The real/bogus CNN: new, reference and difference stamps in, bogus/real logits out.

The braai idea of ZTF (Duev et al. 2019) at a smaller scale: a VGG-like stack of 3x3
convolutions over the three stamps as channels, global average pooling (so a candidate scores
the same wherever its light sits in the stamp) and one linear layer. About 60 k parameters.
"""

import torch
from torch import nn

from imaging.transients.realbogus import INPUT_SHAPE


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class RealBogusNet(nn.Module):
    """Logits `[N, 2]` (bogus, real) for normalised triplets `[N, 3, 31, 31]`."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(INPUT_SHAPE[0], 16),
            nn.MaxPool2d(2),
            _block(16, 32),
            nn.MaxPool2d(2),
            _block(32, 48),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(48, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised triplets."""
        return self.head(self.features(x))

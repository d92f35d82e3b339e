"""The frame-quality CNN: one float32 tensor [N, 1, 128, 128] in, logits over good, medium, bad out.

It keeps the seed's QualityClassifier shape, four convolution blocks (3x3 convolution,
BatchNorm, ReLU, 2x2 max pooling), with two changes:
- the widths are a parameter: `width` channels in the first block, doubled by each (16 gives
  the seed's 16-32-64-128, what the shipped model uses; 8 costs a quarter of the arithmetic,
  about a third of the CPU time per training batch);
- pooling per mosaic panel instead of the seed's 8192x256 fully connected layer (2.1 M weights,
  97 % of the seed's parameters). The preprocessed tensor is a 2x2 mosaic of 64x64 panels, so
  after four poolings each panel is one 4x4 quadrant of the 8x8 feature map; each quadrant is
  average- and max-pooled separately, which keeps *which view* a feature came from (the reduced
  full frame or a native-resolution star crop) and drops *where* in the view it was.
The result has 163 k parameters at width 16 (0.7 MB as TorchScript; 58 k at width 8) and is
TorchScript-able.

`PanelSymmetricNet` is what sites run: the trained net applied to the eight rotations and flips
of every panel (each turned in place, as the training augmentation does) and its class
probabilities averaged. The sky has no preferred orientation, so the eight views are equally
valid; averaging them removes the net's residual orientation bias (test-time augmentation).
"""

import math
from itertools import pairwise

import torch
from torch import nn

from imaging.preprocess import INPUT_SHAPE, PANEL_PX
from protos import QualityLabel
from training.config import DEFAULT_WIDTH

CLASS_NAMES: tuple[str, ...] = tuple(label.value for label in QualityLabel)
MOSAIC_PANELS_PER_SIDE = INPUT_SHAPE[-1] // PANEL_PX
HIDDEN_UNITS = 64


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU, then halve the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class PanelPooling(nn.Module):
    """Average and max of each mosaic panel's features: [N, C, H, W] -> [N, 2 * C * panels]."""

    def __init__(self, panels_per_side: int = MOSAIC_PANELS_PER_SIDE) -> None:
        super().__init__()
        self.average = nn.AdaptiveAvgPool2d(panels_per_side)
        self.maximum = nn.AdaptiveMaxPool2d(panels_per_side)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([self.average(features), self.maximum(features)], dim=1)
        return torch.flatten(pooled, start_dim=1)


class QualityNet(nn.Module):
    """The seed's QualityClassifier with panel pooling instead of the large dense layer."""

    def __init__(
        self,
        num_classes: int = len(CLASS_NAMES),
        dropout: float = 0.2,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        super().__init__()
        channels = (INPUT_SHAPE[0], *(width * 2**block for block in range(4)))
        self.features = nn.Sequential(
            *(_conv_block(c_in, c_out) for c_in, c_out in pairwise(channels))
        )
        pooled_width = 2 * channels[-1] * MOSAIC_PANELS_PER_SIDE**2
        self.classifier = nn.Sequential(
            PanelPooling(),
            nn.Dropout(dropout),
            nn.Linear(pooled_width, HIDDEN_UNITS),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(HIDDEN_UNITS, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class PanelSymmetricNet(nn.Module):
    """`net` averaged over the 8 dihedral views of every mosaic panel: log-probabilities out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.panels_per_side = MOSAIC_PANELS_PER_SIDE
        self.panel_px = PANEL_PX

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        count, side, panel = images.shape[0], self.panels_per_side, self.panel_px
        panels = images.reshape(count, 1, side, panel, side, panel).permute(0, 1, 2, 4, 3, 5)
        views: list[torch.Tensor] = []
        for turns in range(4):
            turned = torch.rot90(panels, turns, dims=[4, 5])
            views.append(turned)
            views.append(torch.flip(turned, dims=[5]))
        batch = torch.cat(
            [view.permute(0, 1, 2, 4, 3, 5).reshape(images.shape) for view in views], dim=0
        )
        log_probabilities = torch.log_softmax(self.net(batch), dim=1)
        stacked = log_probabilities.reshape(len(views), count, log_probabilities.shape[1])
        return torch.logsumexp(stacked, dim=0) - math.log(len(views))


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

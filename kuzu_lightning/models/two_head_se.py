"""The two-head character classifier with a Squeeze-and-Excitation branch (a plain ``nn.Module``), ``TwoHeadSE``.

The PyTorch port of the Keras model: a timm backbone without its pooling and classifier (Xception,
``legacy_xception``, as in the original; any timm network by name, such as the demo's ``resnet18``);
on its feature map two heads,

(a) global average pool || global max pool -> dropout -> linear;
(b) Squeeze-and-Excitation (global average pool, linear C -> C/r without bias, ReLU,
    linear C/r -> C without bias, sigmoid, channel-wise product) -> the same pooling, dropout
    and linear.

``forward`` takes RGB images (``uint8`` 0..255, or float in 0..1), ``B x 3 x H x W``, normalises
them with the backbone's mean and std, and returns both heads' logits.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Channel attention: ``x * sigmoid(W2 relu(W1 mean_hw(x)))``, both linears without bias."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.squeeze = nn.Linear(channels, channels // reduction, bias=False)
        self.excite = nn.Linear(channels // reduction, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean(dim=(2, 3))))))
        return x * weights[:, :, None, None]


class AvgMaxHead(nn.Module):
    """Global average pool concatenated with global max pool, dropout, linear."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)))


class TwoHeadSE(nn.Module):
    """A timm backbone (default ``legacy_xception``, the Keras Xception's twin; any timm network) with two heads.

    ``pretrained=True`` loads timm's weights for ``backbone`` (needs the network once);
    ``weights_path`` loads them from a local file instead (a timm/torch state dict of the
    backbone), offline. Neither by default.
    """

    def __init__(self, num_classes: int, backbone: str = "legacy_xception", pretrained: bool = False,
                 weights_path: str | None = None, dropout: float = 0.5, se_reduction: int = 16):
        super().__init__()
        overlay = {"file": str(Path(weights_path).expanduser())} if weights_path else None
        self.backbone = timm.create_model(backbone, pretrained=pretrained or bool(weights_path), num_classes=0,
                                          global_pool="", pretrained_cfg_overlay=overlay)
        channels = self.backbone.num_features
        self.plain_head = AvgMaxHead(channels, num_classes, dropout)
        self.se = SqueezeExcitation(channels, se_reduction)
        self.se_head = AvgMaxHead(channels, num_classes, dropout)
        config = self.backbone.pretrained_cfg
        self.register_buffer("mean", torch.tensor(config.get("mean", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.get("std", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` 0..255 or float 0..1 RGB -> the backbone's normalised float input."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.forward_features(self.normalise(images))
        return self.plain_head(features), self.se_head(self.se(features))

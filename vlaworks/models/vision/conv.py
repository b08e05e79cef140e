"""A small conv trunk as a vision tower: a hybrid-ViT stem for the miniature world.

The miniature world's ViT towers start from random weights and cut each view into
patches with one linear layer, so a 3-5 px object's place inside its patch must be
learnt from a few thousand frames. A conv stem brings the locality and translation
equivariance a ViT lacks at this scale ("Early convolutions help transformers see
better", Xiao et al. 2021; the hybrid ViT of Dosovitskiy et al. 2021; RT-1 feeds
EfficientNet feature maps to its transformer the same way). The trunk is ``bc-cnn``'s
(robomimic-style: 3x3 convs, GroupNorm, ReLU), so a VLA on it and the CNN floor see the
views through the same layers; the VLA keeps the whole feature grid as tokens for its LM
instead of pooling it to keypoints. :class:`SpatialSoftmax` is ``bc-cnn``'s keypoint readout,
also read by ``prismatic-tiny``'s ``keypoints`` token.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.models.vision.featurizer import VisionFeaturizer
from vlaworks.models.vision.preprocess import HALF, normalize_images


class SpatialSoftmax(nn.Module):
    """``[N, C, H, W]`` -> ``[N, 2C]`` expected (x, y) in [-1, 1] of each channel's softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        attn = F.softmax(x.flatten(2) / self.log_temperature.exp(), dim=-1).view(n, c, h, w)
        ex = (attn.sum(2) * xs).sum(-1)
        ey = (attn.sum(3) * ys).sum(-1)
        return torch.cat([ex, ey], dim=-1)


def conv_trunk(channels: tuple[int, int] = (32, 64), stride: int = 4) -> nn.Sequential:
    """3x3 conv layers (GroupNorm(8) + ReLU each): ``3 -> c1`` at stride 1, ``log2(stride)``
    stride-2 layers (the last one to ``c2``), then ``c2 -> c2`` at stride 1.

    ``stride=4`` is ``bc-cnn``'s encoder: c1 / c1 s2 / c2 s2 / c2.
    """
    if stride < 2 or stride & (stride - 1):
        raise ValueError(f"The conv trunk's stride must be a power of 2 >= 2; got {stride}.")
    c1, c2 = channels
    downs = int(math.log2(stride))
    plan = [(3, c1, 1)] + [(c1, c1, 2)] * (downs - 1) + [(c1, c2, 2), (c2, c2, 1)]
    layers: list[nn.Module] = []
    for cin, cout, s in plan:
        layers += [nn.Conv2d(cin, cout, 3, s, 1), nn.GroupNorm(8, cout), nn.ReLU()]
    return nn.Sequential(*layers)


class ConvFeaturizer(VisionFeaturizer):
    """``[N, 3, H, W]`` uint8 -> ``[N, (S / stride)^2, c2]``: the trunk's feature map of the view
    resized to ``S`` and scaled to [-1, 1] (as ``bc-cnn`` reads it), row-major."""

    kind = "conv"

    def __init__(self, image_size: int = 64, stride: int = 4, channels: tuple[int, int] = (32, 64)) -> None:
        super().__init__()
        if image_size % stride:
            raise ValueError(f"image_size {image_size} must be a multiple of the conv stride {stride}.")
        self.net = conv_trunk(channels, stride)
        self.image_size, self.stride = int(image_size), int(stride)
        self.channels = (int(channels[0]), int(channels[1]))
        self.out_dim = self.channels[1]
        self.num_patches = (image_size // stride) ** 2

    @classmethod
    def tiny(cls, image_size: int, patch_size: int, attn_implementation: str) -> ConvFeaturizer:
        """Random-init trunk at stride ``patch_size`` (no attention: the third argument is unused)."""
        return cls(image_size, patch_size)

    def folder_meta(self) -> dict[str, Any]:
        return {self.kind: {"image_size": self.image_size, "stride": self.stride, "channels": self.channels}}

    @classmethod
    def from_folder_meta(cls, meta: dict[str, Any]) -> ConvFeaturizer:
        return cls(**meta[cls.kind])

    def features(self, images: torch.Tensor) -> torch.Tensor:
        dtype = self.net[0].weight.dtype
        x = self.net(normalize_images(images, self.image_size, HALF, HALF, dtype))
        return x.flatten(2).transpose(1, 2)

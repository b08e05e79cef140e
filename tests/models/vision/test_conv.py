"""The conv-trunk vision tower (``vision="conv"``), keypoint tokens, and the Prismatic backbone on them."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.backbones.families.cnn import ConvEncoder
from vlaworks.models.vision.conv import ConvFeaturizer, conv_trunk


def images(n: int, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_stride_four_trunk_is_bc_cnns_encoder() -> None:
    """The VLA's tower and the CNN floor see views through the same layers (and bc-cnn's
    checkpoints keep their parameter names)."""
    trunk, encoder = conv_trunk((32, 64), 4), ConvEncoder((32, 64)).net
    assert [(k, v.shape) for k, v in trunk.state_dict().items()] == [
        (k, v.shape) for k, v in encoder.state_dict().items()
    ]
    convs = [m for m in conv_trunk((8, 16), 8) if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 2, 2, 1]
    assert [c.out_channels for c in convs] == [8, 8, 8, 16, 16]


def test_features_are_the_feature_grid_of_the_resized_view() -> None:
    feat = ConvFeaturizer(32, 4, (8, 16))
    out = feat(images(2))
    assert out.shape == (2, 64, 16) and feat.num_patches == 64 and feat.out_dim == 16
    grid = feat.net(images(2).float() / 127.5 - 1.0)  # bc-cnn's input scaling
    torch.testing.assert_close(out, grid.flatten(2).transpose(1, 2))
    assert feat(images(2, size=48)).shape == (2, 64, 16)  # other view sizes are resized


def test_bad_stride_or_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        conv_trunk((8, 16), 6)
    with pytest.raises(ValueError, match="multiple of the conv stride"):
        ConvFeaturizer(30, 4)


def test_prismatic_on_the_conv_tower_trains_and_reloads_exactly(reloads_exactly) -> None:
    torch.manual_seed(0)
    m = build_backbone("prismatic-tiny", image_size=32, patch_size=4, token_merge=4, vision="conv").eval()
    q = torch.randn(1, 1, m.hidden_size, requires_grad=True)
    imgs = images(2).reshape(1, 2, 3, 32, 32)
    out = m(imgs, ["put the red cube in the bowl"], [ExtraTokens("q", embeds=q)])
    assert out.spans["q"].stop - out.spans["q"].start == 1
    out.hidden[:, out.spans["q"]].sum().backward()
    assert q.grad is not None and m.featurizer.net[0].weight.grad.abs().sum() > 0
    folder = reloads_exactly(m, imgs)
    with pytest.raises(ValueError, match="holds vision='conv'"):
        build_backbone(str(folder), vision="dinosiglip")


def test_keypoint_tokens_add_one_token_per_view_that_tracks_the_features(reloads_exactly) -> None:
    torch.manual_seed(0)
    plain = build_backbone("prismatic-tiny", image_size=32, patch_size=8, token_merge=2)
    torch.manual_seed(0)
    m = build_backbone("prismatic-tiny", image_size=32, patch_size=8, token_merge=2, keypoints=True).eval()
    imgs = images(2).reshape(1, 2, 3, 32, 32)
    with torch.no_grad():
        tokens, _ = m.encode_images(imgs)
        base, _ = plain.encode_images(imgs)
    assert tokens.shape[1] == base.shape[1] + 2  # 4 merged tokens + 1 keypoint token per view
    # the keypoint token is the spatial-softmax readout of the view's projected patches
    with torch.no_grad():
        proj = m.projector(m.featurizer.features(imgs[0]))
        grid = proj.transpose(1, 2).reshape(2, m.hidden_size, 4, 4)
        torch.testing.assert_close(tokens[0, [4, 9]], m.keypoints(grid))
    out = m(imgs, ["put the red cube in the bowl"])
    assert out.spans["image"].stop - out.spans["image"].start == 10
    folder = reloads_exactly(m, imgs)
    with pytest.raises(ValueError, match="holds keypoints=True"):
        build_backbone(str(folder), keypoints=False)

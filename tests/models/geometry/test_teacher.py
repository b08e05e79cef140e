"""Geometry teachers: the miniature GeometryNet (shapes, joint attention across views, save /
load), Hugging Face Depth Anything / DPT folders from tiny configs, and the resampling of
teacher features to the VLA's token grid."""

from __future__ import annotations

import json

import pytest
import torch

from vlaworks.models.geometry.teacher import (
    GeometryNet,
    GeometryNetConfig,
    HFDepthTeacher,
    grid_features,
    load_teacher,
    resolve_teacher_folder,
    token_grid,
)

TINY = GeometryNetConfig(image_size=32, width=16, layers=1, heads=2)


def _images(b: int = 2, v: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, v, 3, size, size), dtype=torch.uint8, generator=g)


def test_geometry_net_shapes_and_views_attend_to_each_other() -> None:
    torch.manual_seed(0)
    net = GeometryNet(TINY).eval()
    images = _images()
    with torch.no_grad():
        feats, log_depth, points = net(images)
        assert feats.shape == (2, 2, 16, 4, 4) and net.dim == 16
        assert log_depth.shape == (2, 2, 32, 32) and points.shape == (2, 2, 3, 32, 32)
        assert net.features(_images(1, 3, size=64)).shape == (1, 3, 16, 4, 4)  # any view count, resized
        other = images.clone()
        other[:, 1] = 255 - other[:, 1]
        changed = net.features(other)
    assert not torch.allclose(changed[:, 0], feats[:, 0])  # view 0's features read view 1 (global attention)


def test_geometry_net_round_trips_through_its_folder(tmp_path) -> None:
    torch.manual_seed(0)
    net = GeometryNet(TINY).eval()
    net.save(tmp_path / "teacher")
    loaded = load_teacher(str(tmp_path / "teacher"))
    assert isinstance(loaded, GeometryNet) and loaded.config == TINY and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    images = _images()
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(images), net.features(images))
    with pytest.raises(ValueError, match="multiple of 8"):
        GeometryNet(GeometryNetConfig(image_size=30))


def _tiny_depth_anything(folder, mean=None):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, patch_size=14,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    model.save_pretrained(str(folder))
    if mean is not None:
        settings = {"image_mean": mean, "image_std": [0.5] * 3}
        (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    return model


def test_depth_anything_folder_gives_its_last_layer_patch_tokens(tmp_path) -> None:
    model = _tiny_depth_anything(tmp_path / "da", mean=[0.5, 0.5, 0.5])
    teacher = load_teacher(str(tmp_path / "da"))
    assert isinstance(teacher, HFDepthTeacher)
    assert (teacher.image_size, teacher.patch_size, teacher.dim) == (56, 14, 32)
    assert torch.equal(teacher.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    images = _images(size=56)
    with torch.no_grad():
        feats = teacher.features(images)
        pixels = (images.flatten(0, 1).float() / 255.0 - 0.5) / 0.5
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    assert feats.shape == (2, 2, 32, 4, 4)
    # patch (row 1, col 2) of view 1 of sample 0 is token 1 + 1 * 4 + 2 after the class token
    torch.testing.assert_close(feats[0, 1, :, 1, 2], hidden[1, 1 + 6], atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_dpt_folder_loads_and_other_models_are_refused(tmp_path) -> None:
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
        patch_size=14, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8,
    )
    DPTForDepthEstimation(config).save_pretrained(str(tmp_path / "dpt"))
    teacher = load_teacher(str(tmp_path / "dpt"))
    assert teacher.features(_images(1, 2, size=40)).shape == (1, 2, 32, 4, 4)
    (tmp_path / "glpn").mkdir()
    (tmp_path / "glpn" / "config.json").write_text(json.dumps({"model_type": "glpn"}))
    with pytest.raises(ValueError, match="transformers has no VGGT"):
        load_teacher(str(tmp_path / "glpn"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no geometry teacher"):
        load_teacher(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="vlaworks geometry-teacher"):
        resolve_teacher_folder(str(tmp_path / "nowhere"))


def test_grid_features_resample_per_view_in_row_major_order() -> None:
    """An 8 x 8 map whose value is its row-major index, halved to 4 x 4: each token is the mean
    of its 2 x 2 block, views follow each other."""
    index = torch.arange(64, dtype=torch.float32).view(1, 1, 1, 8, 8)
    feats = torch.cat([index, index + 100], dim=1)  # [1, 2 views, 1 channel, 8, 8]
    tokens = grid_features(feats, 4)
    assert tokens.shape == (1, 32, 1)
    block = index[0, 0, 0].view(4, 2, 4, 2).mean(dim=(1, 3)).flatten()
    torch.testing.assert_close(tokens[0, :16, 0], block)
    torch.testing.assert_close(tokens[0, 16:, 0], block + 100)
    assert torch.equal(grid_features(feats, 8)[0, :64, 0], index.flatten())


def test_token_grid_needs_square_grids_per_view() -> None:
    assert token_grid(32, 2) == 4 and token_grid(49, 1) == 7
    with pytest.raises(ValueError, match="not square grids"):
        token_grid(30, 2)

"""Geometry alignment: the cosine loss by hand, gradient into the projector and the VLM and never
into the teacher, and zero inference cost: predictions identical with and without it, no
teacher weight in any saved policy, a policy that loads and predicts without the teacher."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from typer.testing import CliRunner

from vlaworks.batch import Batch
from vlaworks.cli import app
from vlaworks.models.aux.geometry import GeometryAlignLoss, GeometryAlignOptions
from vlaworks.models.checkpoint import WEIGHTS_FILE, load_policy, save_policy
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.geometry.teacher import GeometryNet, GeometryNetConfig, grid_features
from vlaworks.models.policy import build_policy, without_aux_losses

DIM = 16


@pytest.fixture
def teacher_dir(tmp_path):
    torch.manual_seed(1)
    net = GeometryNet(GeometryNetConfig(image_size=32, width=DIM, layers=1, heads=2))
    return net.save(tmp_path / "teacher")


def _config(teacher: str, aux: bool = True) -> PolicyConfig:
    return PolicyConfig(
        backbone="fake",
        head=PartSpec("pokevla_expert", {"width": 16, "layers": 1, "heads": 2, "queries": 4}),
        chunk_size=3,
        cameras=("base", "wrist"),
        image_size=32,
        aux_losses=[PartSpec("geometry_align", {"teacher": teacher, "teacher_dim": DIM})] if aux else [],
    )


def _batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "push the bowl to the left"],
        camera_names=("base", "wrist"),
        actions=torch.rand(2, 3, 7, generator=g) * 2 - 1,
    )


def _observations() -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in ("base", "wrist")},
            "state": np.zeros(8, np.float32),
            "instruction": "pick up the red cube",
        }
    ]


def test_cosine_loss_by_hand_and_gradient_flow(fake_backbone, teacher_dir) -> None:
    torch.manual_seed(0)
    aux = GeometryAlignLoss(fake_backbone.hidden_size, GeometryAlignOptions(str(teacher_dir), DIM))
    assert aux.weight == 0.5 and not aux.teacher_loaded
    batch = _batch()
    out = fake_backbone(batch.images, batch.instructions)
    loss, metrics = aux.loss(out, batch)
    # the fake backbone's image span is a 2 x 2 token grid per view
    states = out.hidden[:, out.spans["image"]]
    target = grid_features(aux.teacher(states.device).features(batch.images), 2)
    expected = 1 - F.cosine_similarity(aux.projector(states), target, dim=-1).mean()
    torch.testing.assert_close(loss, expected)
    assert metrics["cos"] == pytest.approx(1 - loss.item(), abs=1e-6) and 0 <= loss.item() <= 2
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aux.projector.parameters())
    assert fake_backbone.vision.weight.grad.abs().sum() > 0
    teacher = aux.teacher(states.device)
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    # the teacher stays outside the module tree: no parameter, no state_dict entry
    assert set(aux.state_dict()) == {f"projector.{k}" for k in aux.projector.state_dict()}
    assert len(list(aux.parameters())) == 4


def test_wrong_teacher_width_is_a_clear_error(fake_backbone, teacher_dir) -> None:
    aux = GeometryAlignLoss(fake_backbone.hidden_size, GeometryAlignOptions(str(teacher_dir), teacher_dim=8))
    batch = _batch()
    with pytest.raises(ValueError, match="teacher_dim=16"):
        aux.loss(fake_backbone(batch.images, batch.instructions), batch)
    with pytest.raises(ValueError, match="teacher_dim >= 1"):
        GeometryAlignOptions(teacher_dim=0)


def test_policy_logs_the_weighted_loss(fake_backbones, teacher_dir, normalizer) -> None:
    torch.manual_seed(0)
    with_aux = build_policy(_config(str(teacher_dir)), normalizer)
    torch.manual_seed(0)
    plain = build_policy(_config(str(teacher_dir), aux=False), normalizer)
    plain.load_state_dict(without_aux_losses(with_aux).state_dict())
    batch = _batch()
    loss, metrics = with_aux(batch)
    base, _ = plain(batch)
    assert loss.item() == pytest.approx(base.item() + 0.5 * metrics["geometry_align/loss"], rel=1e-5)
    assert "geometry_align/cos" in metrics


def test_inference_is_unchanged_and_never_needs_the_teacher(
    fake_backbones, teacher_dir, normalizer, tmp_path
) -> None:
    """After a training step with the aux loss, the policy with and without it predicts the same
    actions; predict never loads the teacher; saved policies hold no teacher weight; the
    policy folder loads and predicts once the teacher is gone; --drop-aux removes the projector."""
    torch.manual_seed(0)
    policy = build_policy(_config(str(teacher_dir)), normalizer)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy(_batch())[0].backward()
    optimizer.step()
    aux = policy.aux_losses[0]
    assert aux.teacher_loaded
    stripped = without_aux_losses(policy)
    assert stripped.config.aux_losses == [] and len(stripped.aux_losses) == 0
    expected = policy.predict_chunk(_observations())
    np.testing.assert_array_equal(stripped.predict_chunk(_observations()), expected)

    folder = save_policy(policy, tmp_path / "policy")
    keys = set(load_file(str(folder / WEIGHTS_FILE)))
    assert {k for k in keys if k.startswith("aux_losses.")} == {
        f"aux_losses.0.projector.{k}" for k in aux.projector.state_dict()
    }
    assert not [k for k in keys if "teacher" in k or "stem" in k or "encoder.layers" in k]
    shutil.rmtree(teacher_dir)
    reloaded = load_policy(folder)
    np.testing.assert_array_equal(reloaded.predict_chunk(_observations()), expected)
    assert not reloaded.aux_losses[0].teacher_loaded

    result = CliRunner().invoke(
        app, ["export-policy", "--policy", str(folder), "--out", str(tmp_path / "inference"), "--drop-aux"]
    )
    assert result.exit_code == 0, result.output
    exported_keys = load_file(str(tmp_path / "inference" / WEIGHTS_FILE))
    assert not [k for k in exported_keys if k.startswith("aux_losses.")]
    exported = load_policy(tmp_path / "inference")
    assert exported.config.aux_losses == []
    np.testing.assert_array_equal(exported.predict_chunk(_observations()), expected)

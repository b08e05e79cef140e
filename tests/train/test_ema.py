"""The weight average: its update rule, exact resume, and the exported / loaded policy."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from vlaworks.safefiles import CheckpointError
from vlaworks.train.checkpoint import latest_checkpoint
from vlaworks.train.config import TrainConfig
from vlaworks.train.ema import EMA_FILE, WeightEma, ema_decay_at
from vlaworks.train.smoke import collate_windows
from vlaworks.train.trainer import train


class _Killed(RuntimeError):
    pass


def _die_after(model: nn.Module, calls: int) -> None:
    """Make ``model`` raise on forward call ``calls + 1`` (a run killed mid-training),
    keeping its parameter names (a wrapper module would prefix them)."""
    left = [calls]

    def hook(module: nn.Module, args: tuple) -> None:
        if left[0] == 0:
            raise _Killed("simulated kill")
        left[0] -= 1

    model.register_forward_pre_hook(hook)


def test_update_follows_the_warmed_up_decay_by_hand():
    layer = nn.Linear(1, 1, bias=False)
    frozen = nn.Linear(1, 1, bias=False).requires_grad_(False)
    model = nn.Sequential(layer, frozen)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema = WeightEma(model, decay=0.5)
    assert ema.names == ["0.weight"]  # frozen parameters are not copied
    assert ema_decay_at(0.5, 0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        layer.weight.fill_(3.0)
    ema.update()  # 0.1 * 1 + 0.9 * 3
    assert ema.shadow[0].item() == pytest.approx(2.8)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema.update()  # decay min(0.5, 2 / 11) = 2 / 11
    assert ema.shadow[0].item() == pytest.approx(2.8 * 2 / 11)
    ema.updates = 100
    ema.update()  # the warm-up has passed: decay 0.5
    assert ema.shadow[0].item() == pytest.approx(2.8 * 2 / 11 * 0.5)
    ema.copy_to_model()
    assert layer.weight.item() == pytest.approx(2.8 * 2 / 11 * 0.5)


def test_bad_decay_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(out_dir=tmp_path, ema_decay=1.0)


def test_the_run_exports_the_average_and_checkpoints_keep_both(windows, make_model, make_cfg):
    cfg = make_cfg("ema", ema_decay=0.9)
    model = make_model(0)
    train(model, windows, collate_windows, cfg)
    last = latest_checkpoint(cfg.out_dir / "checkpoints")
    averaged = load_file(str(last / EMA_FILE))
    trained = load_file(str(last / "model.safetensors"))
    state = model.state_dict()
    assert set(averaged) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, value in averaged.items():
        assert torch.equal(state[name], value)  # the model handed back is the average
    assert any(not torch.equal(trained[n], averaged[n]) for n in averaged)  # not the last weights


def test_resume_reproduces_the_uninterrupted_average(windows, make_model, make_cfg):
    straight = make_model(0)
    train(straight, windows, collate_windows, make_cfg("straight", ema_decay=0.9))

    cfg = make_cfg("resumed", ema_decay=0.9)
    killed = make_model(0)
    _die_after(killed, calls=4)
    with pytest.raises(_Killed):
        train(killed, windows, collate_windows, cfg)
    assert latest_checkpoint(cfg.out_dir / "checkpoints").name == "step-000003"
    torch.manual_seed(12345)
    resumed = make_model(7)
    train(resumed, windows, collate_windows, cfg, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resuming_with_the_other_ema_setting_is_an_error(windows, make_model, make_cfg):
    cfg = make_cfg("plain")
    model = make_model(0)
    _die_after(model, calls=4)
    with pytest.raises(_Killed):
        train(model, windows, collate_windows, cfg)
    with pytest.raises(CheckpointError, match="ema_decay"):
        train(make_model(0), windows, collate_windows, make_cfg("plain", ema_decay=0.9), resume=True)


def test_a_trainer_checkpoint_loads_as_the_averaged_policy(tmp_path):
    """``load_policy`` on a checkpoint folder applies its ``ema.safetensors``: the same weights as
    the run's exported ``policy/``."""
    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, train_policy

    data = tmp_path / "data"
    generate(["spatial"], episodes=1, out=data, seed=0, image_size=32)
    run = train_policy(build_recipe("bc-cnn", overrides={"policy.image_size": 32}), data, tmp_path / "run",
                       train_overrides={"steps": 3, "batch_size": 4, "lr": 1e-2, "warmup_steps": 0,
                                        "ema_decay": 0.5, "progress": False})
    step = latest_checkpoint(tmp_path / "run" / "checkpoints")
    exported, from_checkpoint = load_policy(run.policy_dir).state_dict(), load_policy(step).state_dict()
    raw = load_file(str(step / "model.safetensors"))
    assert all(torch.equal(exported[k], from_checkpoint[k]) for k in exported)
    assert any(not torch.equal(exported[k], raw[k]) for k in load_file(str(step / EMA_FILE)))

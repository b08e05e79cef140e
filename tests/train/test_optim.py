from __future__ import annotations

import pytest
import torch
from torch import nn

from vlaworks.train.optim import build_optimizer, build_scheduler, split_decay_params


class _CustomRMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, 1))  # 2-D on purpose: the class name decides


def test_decay_groups_and_frozen_parameters(make_model):
    model = make_model()
    decay, no_decay = split_decay_params(model)
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(decay) == ids([model.mlp.weight, model.action_head.weight, model.vl_head.weight])
    assert ids([model.text.weight, model.norm.weight, model.norm.bias, model.mlp.bias]) <= ids(no_decay)
    frozen = ids(model.stem.parameters())
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not frozen & in_opt
    assert in_opt == ids(p for p in model.parameters() if p.requires_grad)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_library_norms_and_learned_tokens_are_not_decayed():
    model = nn.Module()
    model.proj = nn.Linear(4, 4)
    model.final_norm = _CustomRMSNorm(4)
    model.action_query = nn.Parameter(torch.zeros(3, 4))
    decay, no_decay = split_decay_params(model)
    assert {id(p) for p in decay} == {id(model.proj.weight)}
    assert {id(model.final_norm.weight), id(model.action_query)} <= {id(p) for p in no_decay}


def test_schedule_warms_up_linearly_then_decays_to_zero():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, warmup_steps=4, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)

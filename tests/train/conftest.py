"""Fake model and data for trainer tests: the tiny policy and synthetic datasets of
``vlaworks.train.smoke`` (importable, so the torchrun test can use them too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vlaworks.train.config import TrainConfig
from vlaworks.train.smoke import SyntheticVL, SyntheticWindows, TinyPolicy


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def windows() -> SyntheticWindows:
    return SyntheticWindows(24, size=8)


@pytest.fixture
def vl_data() -> SyntheticVL:
    return SyntheticVL(16, size=8)


@pytest.fixture
def make_model() -> Callable[[int], TinyPolicy]:
    """A fresh TinyPolicy whose initial weights depend on ``init_seed``."""

    def make(init_seed: int = 0) -> TinyPolicy:
        torch.manual_seed(init_seed)
        return TinyPolicy(hidden=16)

    return make


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., TrainConfig]:
    def make(name: str = "run", **overrides) -> TrainConfig:
        base = dict(out_dir=tmp_path / name, steps=6, batch_size=4, lr=1e-2, weight_decay=0.01,
                    warmup_steps=1, save_every=3, keep_last=2, log_every=1, progress=False)
        base.update(overrides)
        return TrainConfig(**base)

    return make

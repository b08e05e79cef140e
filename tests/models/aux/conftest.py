"""Shared by the auxiliary-loss tests: a documented ``--set`` switch on ``vlm4vla+proprio``
trained for two steps on a freshly generated one-episode dataset with segmentation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: the tiny views and chunk every switch test trains with
TINY = {
    "policy.cameras": ["base", "wrist"],
    "policy.image_size": 32,
    "policy.backbone_options.image_size": 32,
    "policy.backbone_options.patch_size": 16,
    "policy.chunk_size": 4,
}


@pytest.fixture
def train_switch(tmp_path: Path) -> Callable[..., tuple[Path, Path, Any, dict[str, Any]]]:
    """``train_switch(overrides, suite, layout)`` -> the dataset folder, the run folder, the
    reloaded policy and the dataset's first observation (images, instruction, state; no masks),
    after two training steps with ``overrides`` on top of :data:`TINY`."""
    from vlaworks.data.lerobot import LeRobotDataset
    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, train_policy

    def run(overrides: dict[str, Any], suite: str, layout: str) -> tuple[Path, Path, Any, dict[str, Any]]:
        data, out = tmp_path / "data", tmp_path / "run"
        generate([suite], episodes=1, out=data, image_size=32, layout=layout, segmentation=True)
        recipe = build_recipe("vlm4vla+proprio", backbone="prismatic-tiny", overrides={**TINY, **overrides})
        train = {"steps": 2, "batch_size": 2, "log_every": 1, "progress": False, "save_every": 0}
        result = train_policy(recipe, data, out, train_overrides=train)
        assert len(result.result.losses) == 2
        episode = LeRobotDataset(data).episode(0)
        obs = {
            "images": {c: episode[f"observation.images.{c}"][0] for c in ("base", "wrist")},
            "instruction": episode["task"],
            "state": episode["observation.state"][0],
        }
        return data, out, load_policy(out), obs

    return run

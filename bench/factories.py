"""Real-policy factories for ``bench/bench_train.py --factory bench.factories:NAME``.

Each builds the policy a recipe trains and a window dataset of a few fresh expert
episodes of the tabletop world (generated once into a temp folder), so the benchmark
measures the real forward / backward / data path rather than a stand-in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from vlaworks.data.dataset import WindowDataset, collate_windows
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.models.policy import build_policy
from vlaworks.sim.generate import generate
from vlaworks.train.pipeline import build_recipe

IMAGE_SIZE = 64


def _windows_and_policy(recipe_name: str, overrides: dict) -> tuple[nn.Module, Any, Callable]:
    data = Path(tempfile.mkdtemp(prefix="vlaworks-bench-")) / "data"
    generate(["spatial"], episodes=4, out=data, seed=0, image_size=IMAGE_SIZE)
    ds = LeRobotDataset(data)
    recipe = build_recipe(recipe_name, backbone="prismatic-tiny", overrides=overrides)
    config = recipe.policy
    normalizer = Normalizer(ds.stats, mode=config.normaliser_mode, keys=("action",))
    windows = WindowDataset(
        ds, cameras=list(config.cameras), chunk=config.chunk_size, normalizer=normalizer,
        with_state=False, image_size=config.image_size,
    )
    return build_policy(config, normalizer), windows, collate_windows


def demo_vlm4vla(batch_size: int) -> tuple[nn.Module, Any, Callable]:
    """The demo's policy: VLM4VLA on prismatic-tiny, base + wrist at 64 px, 8 px patches, chunk 8."""
    return _windows_and_policy(
        "vlm4vla",
        {
            "policy.cameras": ["base", "wrist"],
            "policy.image_size": IMAGE_SIZE,
            "policy.chunk_size": 8,
            "policy.backbone_options": {"image_size": IMAGE_SIZE, "patch_size": 8},
        },
    )

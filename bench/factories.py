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

from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.demo import DemoConfig
from vlaworks.miniature import MINIATURE
from vlaworks.models.policy import build_policy
from vlaworks.processing import collate
from vlaworks.sim.generate import generate
from vlaworks.train.pipeline import build_recipe, training_windows

IMAGE_SIZE = 64


def _windows_and_policy(
    recipe_name: str, overrides: dict, backbone: str | None = "prismatic-tiny"
) -> tuple[nn.Module, Any, Callable]:
    data = Path(tempfile.mkdtemp(prefix="vlaworks-bench-")) / "data"
    generate(["spatial"], episodes=4, out=data, seed=0, image_size=IMAGE_SIZE)
    recipe = build_recipe(recipe_name, backbone=backbone, overrides=overrides)
    recipe, normalizer, windows = training_windows(recipe, LeRobotDataset(data))
    return build_policy(recipe.policy, normalizer), windows, collate


def demo_policy(batch_size: int) -> tuple[nn.Module, Any, Callable]:
    """The demo's policy at its defaults (``vlaworks.demo.DemoConfig`` on
    ``vlaworks.miniature.MINIATURE``): VLM4VLA + proprio on prismatic-tiny, base + wrist at
    64 px, 8 px patches merged 2 x 2, random shift, eager attention, chunk 8 (run with
    ``--mixed-precision bf16`` as the demo does on bf16 CPUs)."""
    return _windows_and_policy(DemoConfig().recipe, MINIATURE.policy_overrides())


def demo_vlm4vla(batch_size: int) -> tuple[nn.Module, Any, Callable]:
    """The demo's policy before issue 9: VLM4VLA on prismatic-tiny, base + wrist at 64 px,
    8 px patches (64 LM tokens per view), chunk 8, no proprio, no augmentation."""
    return _windows_and_policy(
        "vlm4vla",
        {
            "policy.cameras": ["base", "wrist"],
            "policy.image_size": IMAGE_SIZE,
            "policy.chunk_size": 8,
            "policy.backbone_options": {"image_size": IMAGE_SIZE, "patch_size": 8},
        },
    )


def bc_cnn(batch_size: int) -> tuple[nn.Module, Any, Callable]:
    """The ``bc-cnn`` floor at its recipe defaults (conv encoder per camera, spatial-softmax
    keypoints, instruction embedding, proprio, 2 x 256 MLP, chunk 8; run with ``--batch-size 64``
    as the recipe trains)."""
    return _windows_and_policy("bc-cnn", {}, backbone=None)

"""Recipes: one entry per system, baseline and ablation; ``get_recipe(name, **options)``.

Each entry is a builder returning a :class:`~vlaworks.recipes.base.Recipe`: VLM4VLA (seed
003) and its ablations, OpenVLA and seed 004's D / S / C variants (``openvla``,
``openvla+D`` ... ``openvla+``), π0 with its flow-matching action expert and seed 004's
π0⁺ (``pi0``, ``pi0+``), OpenVLA-OFT's parallel decoding with L1 (``openvla-oft``),
PixelVLA with its Table 4 rows and PixelVLA-π0 (``pixelvla``, ``pixelvla-baseline``,
``pixelvla+ft``, ``pixelvla+ft+cat``, ``pixelvla+ft+pue``, ``pixelvla-pi0``; staged
recipes), PokeVLA and its Table VI rows (``pokevla``, ``pokevla-vanilla``,
``pokevla+pretraining``, ``pokevla+geometry``, ``pokevla+goal``; the pre-training rows take a pretrained VLM
folder as ``backbone``), and the non-VLA floor ``bc-cnn``.
``vlaworks.recipes.training`` joins a recipe's co-training mix and FAST fitting to the
training data.
"""

from __future__ import annotations

from typing import Any

from vlaworks.models.config import Registry
from vlaworks.recipes.base import Recipe

RECIPES = Registry(
    "recipe",
    {
        "vlm4vla": "vlaworks.recipes.vlm4vla:vlm4vla",
        "vlm4vla+proprio": "vlaworks.recipes.vlm4vla:vlm4vla_proprio",
        "vlm4vla-scratch": "vlaworks.recipes.vlm4vla:vlm4vla_scratch",
        "vlm4vla-freeze-vision": "vlaworks.recipes.vlm4vla:vlm4vla_freeze_vision",
        "vlm4vla-freeze-embeddings": "vlaworks.recipes.vlm4vla:vlm4vla_freeze_embeddings",
        "vlm-fast": "vlaworks.recipes.vlm4vla:vlm_fast",
        "vlm-fast-freeze-vision": "vlaworks.recipes.vlm4vla:vlm_fast_freeze_vision",
        "openvla": "vlaworks.recipes.openvla:openvla_base",
        "openvla+D": "vlaworks.recipes.openvla:openvla_d",
        "openvla+S": "vlaworks.recipes.openvla:openvla_s",
        "openvla+C": "vlaworks.recipes.openvla:openvla_c",
        "openvla+DS": "vlaworks.recipes.openvla:openvla_ds",
        "openvla+SC": "vlaworks.recipes.openvla:openvla_sc",
        "openvla+": "vlaworks.recipes.openvla:openvla_plus",
        "openvla-oft": "vlaworks.recipes.openvla_oft:openvla_oft",
        "pixelvla": "vlaworks.recipes.pixelvla:pixelvla_full",
        "pixelvla-baseline": "vlaworks.recipes.pixelvla:pixelvla_baseline",
        "pixelvla+ft": "vlaworks.recipes.pixelvla:pixelvla_ft",
        "pixelvla+ft+cat": "vlaworks.recipes.pixelvla:pixelvla_ft_cat",
        "pixelvla+ft+pue": "vlaworks.recipes.pixelvla:pixelvla_ft_pue",
        "pixelvla-pi0": "vlaworks.recipes.pixelvla:pixelvla_pi0",
        "pokevla": "vlaworks.recipes.pokevla:pokevla",
        "pokevla-vanilla": "vlaworks.recipes.pokevla:pokevla_vanilla",
        "pokevla+pretraining": "vlaworks.recipes.pokevla:pokevla_pretraining",
        "pokevla+geometry": "vlaworks.recipes.pokevla:pokevla_geometry",
        "pokevla+goal": "vlaworks.recipes.pokevla:pokevla_goal",
        "pi0": "vlaworks.recipes.pi0:pi0",
        "pi0+": "vlaworks.recipes.pi0:pi0_plus",
        "bc-cnn": "vlaworks.recipes.bc_cnn:bc_cnn",
    },
)


def get_recipe(name: str, **options: Any) -> Recipe:
    """The recipe registered as ``name``, built with ``options`` (e.g. ``backbone=...``)."""
    return RECIPES.resolve(name)(**options)


def recipe_names() -> list[str]:
    return RECIPES.names()


__all__ = ["RECIPES", "Recipe", "get_recipe", "recipe_names"]

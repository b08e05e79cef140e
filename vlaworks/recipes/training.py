"""What a recipe asks of the training data: the co-training mix and fitted action tokenizers.

Two steps sit between building a policy from a recipe and calling
``vlaworks.train.trainer.train``:

1. :func:`prepare_policy` fits data-dependent parts on the normalised training action
   chunks (a FAST token head's BPE merges, via :meth:`VLAPolicy.prepare`); other heads
   need nothing and no data is read for them.
2. :func:`training_source` builds the trainer's batch source: the robot windows alone, or,
   when ``recipe.cotrain`` is set (seed 004, III-C), a :class:`MixedBatchSource` drawing a
   whole vision-language batch with probability ``vl_fraction`` and a robot batch
   otherwise. The VL data are rendered by the tabletop world at the policy's image size
   and cameras (``VLDataset.generate``), optionally cached to an ``.npz``.

``train(policy, training_source(...), None, cfg)`` then trains both batch kinds through
``VLAPolicy.forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlaworks.recipes.base import Recipe

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from vlaworks.batch import Batch
    from vlaworks.data.dataset import WindowDataset
    from vlaworks.data.vl import VLDataset
    from vlaworks.models.policy import VLAPolicy
    from vlaworks.train.sampler import MixedBatchSource

#: how many VL samples to render when the recipe does not say
DEFAULT_VL_SAMPLES = 2000


def needs_fitting(policy: VLAPolicy) -> bool:
    """Whether the policy's head has a data-dependent tokenizer (FAST) to fit."""
    return hasattr(getattr(policy.head, "tokenizer", None), "fit")


def action_chunks(windows: WindowDataset, max_chunks: int = 4096, seed: int = 0) -> np.ndarray:
    """Normalised action chunks ``[N, chunk, D]`` of ``windows``' episodes, as the windows
    build them (past the episode end the last action repeats), without decoding frames
    beyond the episodes read. Episodes are visited in a seeded random order until
    ``max_chunks`` chunks are collected."""
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1; got {max_chunks}.")
    episode_ids, _ = windows.ds.episode_bounds()
    order = np.random.default_rng(seed).permutation(episode_ids)
    chunks: list[np.ndarray] = []
    for episode in order:
        chunks.extend(windows.processor.action_windows(windows.ds.episode(int(episode))["action"]))
        if len(chunks) >= max_chunks:
            break
    return windows.processor.normalize_actions(np.stack(chunks[:max_chunks]))


def prepare_policy(
    policy: VLAPolicy, windows: WindowDataset, max_chunks: int = 4096, seed: int = 0
) -> dict[str, float] | None:
    """Fit the policy's data-dependent parts on ``windows``' action chunks before training.
    Returns the tokenizer's fit report on those chunks (FAST: reconstruction error, tokens
    per chunk; see ``FastTokenizer.fit_report``), or ``None`` when nothing was fitted."""
    if not needs_fitting(policy):
        return None
    chunks = action_chunks(windows, max_chunks, seed)
    policy.prepare(chunks)
    return policy.head.tokenizer.fit_report(chunks)


def vl_dataset_for(recipe: Recipe, cache: str | Path | None = None) -> VLDataset:
    """The recipe's co-training VL samples, at its policy's cameras and image size."""
    from vlaworks.data.vl import VLDataset

    if not recipe.cotrain:
        raise ValueError(f"Recipe {recipe.name!r} has no cotrain settings; it trains on robot data only.")
    size = recipe.policy.image_size
    return VLDataset.generate(
        int(recipe.cotrain.get("vl_samples", DEFAULT_VL_SAMPLES)),
        int(recipe.cotrain.get("vl_seed", 0)),
        render_size=size,
        cache=cache,
        cameras=recipe.policy.cameras,
        image_size=size,
    )


def training_source(
    recipe: Recipe,
    robot: Dataset,
    robot_collate: Callable[[list[Any]], Batch],
    batch_size: int,
    *,
    seed: int = 0,
    vl: VLDataset | None = None,
    vl_cache: str | Path | None = None,
) -> MixedBatchSource:
    """The trainer's batch source for ``recipe``: robot batches, mixed with VL batches at
    ``recipe.cotrain["vl_fraction"]`` when co-training (``vl`` or rendered VL samples)."""
    from vlaworks.processing import collate
    from vlaworks.train.sampler import MixedBatchSource

    if not recipe.cotrain:
        if vl is not None:
            raise ValueError(
                f"Recipe {recipe.name!r} does not co-train but VL data was given; use a C recipe "
                "or set cotrain.vl_fraction."
            )
        return MixedBatchSource({"robot": (robot, robot_collate)}, {"robot": 1.0}, batch_size, seed=seed)
    if vl is None:
        vl = vl_dataset_for(recipe, vl_cache)
    if tuple(vl.cameras) != recipe.policy.cameras:
        raise ValueError(
            f"VL dataset cameras {list(vl.cameras)} differ from the policy's {list(recipe.policy.cameras)}; "
            "build the VLDataset with cameras=recipe.policy.cameras."
        )
    fraction = float(recipe.cotrain["vl_fraction"])
    return MixedBatchSource(
        {"robot": (robot, robot_collate), "vl": (vl, collate)},
        {"robot": 1.0 - fraction, "vl": fraction},
        batch_size,
        seed=seed,
    )

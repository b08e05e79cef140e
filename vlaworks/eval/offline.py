"""Open-loop action error on held-out demonstrations: an offline score beside closed-loop success.

Closed-loop success is what matters, but at small training budgets several recipes can
all sit at 0 %, where success cannot rank them. The open-loop error of each predicted
chunk against the expert's chunk, on episodes the policy never trained on, still can: it
is the quantity behaviour cloning minimises, measured out of sample.

Units are the policy's own normalised action space (its q01/q99 statistics map each
dimension to [-1, 1]): ``translation_l1`` and ``rotation_l1`` are mean absolute errors
over dims 0-2 and 3-5, ``gripper_agreement`` is the share of steps whose gripper command
has the expert's sign, all over the valid (unpadded) steps of every chunk. Frames are
taken every ``every`` steps of each held-out episode; decoding is the policy's own
(greedy, grammar-constrained for token heads), so all recipes are scored the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.processing import collate

TRANSLATION, ROTATION, GRIPPER = slice(0, 3), slice(3, 6), 6


def action_error(
    policy_or_path: Any, data: str | Path, *, every: int = 4, batch_size: int = 16
) -> dict[str, float]:
    """Open-loop error of a policy (object, checkpoint or run folder) on the dataset at ``data``."""
    from vlaworks.models.checkpoint import load_policy

    if every < 1 or batch_size < 1:
        raise ValueError(f"every and batch_size must be >= 1; got {every}, {batch_size}.")
    policy = load_policy(policy_or_path)
    config = policy.config
    if config.action_dim != 7:
        raise ValueError(f"action_error scores 7-D end-effector actions; the policy has {config.action_dim}.")
    windows = WindowDataset(LeRobotDataset(Path(data)), policy.processor, training=False)
    frames = list(range(0, len(windows), every))
    sums = {"translation": 0.0, "rotation": 0.0, "gripper": 0.0}
    steps = 0
    was_training = policy.training
    policy.eval()
    try:
        for start in range(0, len(frames), batch_size):
            batch = collate([windows[i] for i in frames[start : start + batch_size]])
            pred = policy.predict(batch.to(policy.device)).float().cpu()
            true, valid = batch.actions.float(), batch.action_mask.bool()
            error = (pred - true).abs()[valid]
            sums["translation"] += float(error[:, TRANSLATION].mean(1).sum())
            sums["rotation"] += float(error[:, ROTATION].mean(1).sum())
            agree = torch.sign(pred[..., GRIPPER]) == torch.sign(true[..., GRIPPER])
            sums["gripper"] += float(agree[valid].sum())
            steps += int(valid.sum())
    finally:
        policy.train(was_training)
    return {
        "translation_l1": sums["translation"] / steps,
        "rotation_l1": sums["rotation"] / steps,
        "gripper_agreement": sums["gripper"] / steps,
        "frames": len(frames),
        "steps": steps,
    }

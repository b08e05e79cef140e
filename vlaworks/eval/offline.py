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

``phases`` splits the same scores by what the expert does over the chunk: ``open`` (the
gripper open throughout: reaching, or leaving after the release), ``closed`` (holding:
carrying) and ``switch`` (the expert closes or opens within the chunk: the grasp and the
release, where a closed-loop policy must be precise). Two policies with the same mean error
can differ where it matters: a reach error is corrected by the next chunk, a grasp error
drops or misses the object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.processing import collate

TRANSLATION, ROTATION, GRIPPER = slice(0, 3), slice(3, 6), 6
PHASES = ("open", "switch", "closed")


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
    # per phase: summed translation error, rotation error, gripper agreement, and valid steps
    sums = {phase: torch.zeros(4, dtype=torch.float64) for phase in PHASES}
    counts = dict.fromkeys(PHASES, 0)
    was_training = policy.training
    policy.eval()
    try:
        for start in range(0, len(frames), batch_size):
            batch = collate([windows[i] for i in frames[start : start + batch_size]])
            pred = policy.predict(batch.to(policy.device)).float().cpu()
            true, valid = batch.actions.float(), batch.action_mask.bool()
            error = (pred - true).abs()
            agree = torch.sign(pred[..., GRIPPER]) == torch.sign(true[..., GRIPPER])
            scores = [error[..., TRANSLATION].mean(-1), error[..., ROTATION].mean(-1), agree.float()]
            per_step = torch.stack([*scores, torch.ones_like(scores[0])], dim=-1) * valid[..., None]
            for phase, row in zip(chunk_phases(true[..., GRIPPER], valid), per_step, strict=True):
                sums[phase] += row.sum(0).double()
                counts[phase] += 1
    finally:
        policy.train(was_training)
    total = sum(sums.values())
    return {
        **_scores(total),
        "frames": len(frames),
        "steps": int(total[3]),
        "phases": {phase: {**_scores(sums[phase]), "frames": counts[phase]} for phase in PHASES},
    }


def chunk_phases(gripper: torch.Tensor, valid: torch.Tensor) -> list[str]:
    """Each expert chunk's phase from its gripper commands ``[B, T]`` over the ``valid`` steps:
    ``switch`` where both signs occur, else ``closed`` (all positive) or ``open``."""
    closed = (gripper > 0) & valid
    opened = (gripper <= 0) & valid
    return [
        "switch" if c and o else "closed" if c else "open"
        for c, o in zip(closed.any(1).tolist(), opened.any(1).tolist(), strict=True)
    ]


def _scores(sums: torch.Tensor) -> dict[str, float | None]:
    """Mean translation / rotation error and gripper agreement from summed step scores (None
    where a phase has no steps: JSON has no NaN)."""
    steps = float(sums[3])
    names = ("translation_l1", "rotation_l1", "gripper_agreement")
    return {name: float(v) / steps if steps else None for name, v in zip(names, sums[:3], strict=True)}

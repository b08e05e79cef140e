"""How much a trained policy's actions depend on its images, proprio state and instruction.

Draws ``--windows`` training windows of a dataset (seeded), predicts their chunks, then
predicts again with each window's images (or state, or instruction) replaced by another
window's, and prints the mean absolute change of the predicted translation + rotation
(normalised units) beside the policy's in-sample error and the spread of the true actions. A
policy that ignores its images moves by ~0 when they are swapped; one that reads them moves by a
fair share of the spread. The instruction column averages over the windows whose swapped
instruction differs from their own (a policy that tells its task from the scene alone moves by
~0 there).

    MUJOCO_GL=egl .venv/bin/python bench/bench_input_reliance.py --policy RUN [RUN ...] --data DATA
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.models.checkpoint import load_policy
from vlaworks.processing import collate

POSE = slice(0, 6)  # translation + rotation of the 7-D end-effector action


def reliance(policy_path: str, data: Path, windows: int, seed: int) -> dict[str, float]:
    """Mean |change| of the predicted pose when images / state / instructions are swapped."""
    policy = load_policy(policy_path).eval()
    dataset = WindowDataset(LeRobotDataset(data), policy.processor, training=False)
    picks = np.random.default_rng(seed).choice(len(dataset), windows, replace=False)
    batch = collate([dataset[int(i)] for i in picks]).to(policy.device)
    perm = torch.randperm(windows, generator=torch.Generator().manual_seed(seed)).to(policy.device)

    swapped_text = [batch.instructions[int(i)] for i in perm]
    other_text = torch.tensor([a != b for a, b in zip(swapped_text, batch.instructions, strict=True)])

    def pose(x: torch.Tensor) -> float:
        return float(x[..., POSE].abs().mean())

    with torch.no_grad():
        base = policy.predict(batch).float()
        images = policy.predict(dataclasses.replace(batch, images=batch.images[perm])).float()
        state = (
            policy.predict(dataclasses.replace(batch, state=batch.state[perm])).float()
            if batch.state is not None
            else base
        )
        text = policy.predict(dataclasses.replace(batch, instructions=swapped_text)).float()
    true = batch.actions.float()
    return {
        "error": pose(base - true),
        "images swapped": pose(images - base),
        "state swapped": pose(state - base),
        "instruction swapped": pose((text - base)[other_text.to(base.device)])
        if other_text.any()
        else float("nan"),
        "true spread": pose(true - true.mean(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", nargs="+", required=True, help="run or policy folders")
    parser.add_argument("--data", type=Path, required=True, help="dataset the windows come from")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_table({p: reliance(p, args.data, args.windows, args.seed) for p in args.policy}, "policy")


def print_table(rows: dict[str, dict[str, float]], label: str) -> None:
    """Print ``{name: {column: value}}`` as a markdown table, one row per name."""
    columns = list(next(iter(rows.values())))
    print(f"| {label} | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()

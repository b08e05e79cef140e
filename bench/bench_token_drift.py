"""Teacher-forced vs decoded action error over the chunk: does a token head drift while it decodes?

A token head is trained with teacher forcing (every answer token sees the true tokens
before it) but decodes from its own tokens. If the LM learns to predict each timestep by
copying the previous one, its teacher-forced error is flat over the chunk while its decoded
error grows with the timestep: one wrong early token derails the rest. This script shows
both on windows of a dataset, per chunk timestep (token cross-entropy where each token
belongs to one timestep: bins, string) and per action dimension (decoded L1 in the policy's
normalised units). Any policy can be scored for the decoded columns (continuous heads give
the reference); the teacher-forced column needs a token head.

    .venv/bin/python bench/bench_token_drift.py --policy RUN --data DATA [--windows 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.models.checkpoint import load_policy
from vlaworks.models.heads.token.head import TokenActionHead
from vlaworks.processing import collate


def teacher_forced_ce(policy, batch) -> torch.Tensor | None:
    """Mean token cross-entropy per chunk timestep ``[T]`` under teacher forcing, or ``None``
    when the head has no tokens or its tokens mix timesteps (FAST)."""
    head = policy.head
    if not isinstance(head, TokenActionHead):
        return None
    symbols, keep = head.answer_symbols(batch)
    steps = [head.tokenizer.steps_of(row.tolist(), head.action_dim) for row in symbols]
    if any(s is None for s in steps):
        return None
    blocks = [*policy.prefix(batch), *head.extra_tokens(batch, policy.backbone, training=True)]
    out = policy.backbone(batch.images, batch.instructions, blocks)
    span = out.spans[head.name]
    logits = policy.backbone.lm_logits(out.hidden[:, span.start - 1 : span.stop - 1]).float()
    ids = head.symbol_ids[symbols]
    ce = F.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none").view_as(ids)
    total, count = torch.zeros(head.chunk), torch.zeros(head.chunk)
    for row, row_steps in enumerate(steps):
        for col, step in enumerate(row_steps):
            if keep[row, col] and step < head.chunk:
                total[step] += ce[row, col]
                count[step] += 1
    return total / count.clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="Run or policy folder.")
    parser.add_argument("--data", type=Path, required=True, help="Dataset whose windows are scored.")
    parser.add_argument("--windows", type=int, default=64, help="Windows, evenly spaced over the dataset.")
    args = parser.parse_args()
    torch.manual_seed(0)
    policy = load_policy(args.policy)
    policy.eval()
    windows = WindowDataset(LeRobotDataset(args.data), policy.processor, training=False)
    picks = list(range(0, len(windows), max(1, len(windows) // args.windows)))[: args.windows]
    batch = collate([windows[i] for i in picks]).to(policy.device)
    with torch.no_grad():
        decoded = policy.predict(batch).float().cpu()
        ce = teacher_forced_ce(policy, batch)
    error = (decoded - batch.actions.float().cpu()).abs()
    valid = batch.action_mask.bool().cpu()
    per_step = [float(error[:, t][valid[:, t]].mean()) for t in range(error.shape[1])]
    per_dim = error[valid].mean(0).tolist()
    print(f"{len(picks)} windows of {args.data}")
    print("| timestep | " + " | ".join(str(t) for t in range(len(per_step))) + " |")
    print("|---|" + "---:|" * len(per_step))
    print("| decoded L1 (mean over dims) | " + " | ".join(f"{v:.3f}" for v in per_step) + " |")
    if ce is not None:
        print("| teacher-forced token CE | " + " | ".join(f"{v:.2f}" for v in ce.tolist()) + " |")
    print("decoded L1 per dimension: " + " ".join(f"{v:.3f}" for v in per_dim))


if __name__ == "__main__":
    main()

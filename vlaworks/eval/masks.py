"""Grounding on held-out demonstrations: the mask IoU of a ``<SEG>`` policy (PokeVLA's
goal-aware segmentation) and the centroid error of a ``target_point`` policy.

For every ``every``-th frame of a dataset with ground-truth segmentation (``vlaworks
generate --segmentation``, seeded apart from the training data), the policy's ``seg_mask``
decoder predicts the coarse and fine masks of every view from the ``<SEG>`` token
(``logits > 0``) and they are compared with the manipulation target's mask at the mask
resolution (:meth:`vlaworks.models.aux.seg.SegMaskLoss.target`). Per view and stage:

* ``ciou``: cumulative IoU, Σ intersection / Σ union over all scored frames (LISA's cIoU;
  false positives on frames where the target is out of view count in the union);
* ``giou``: mean per-frame IoU over the frames where the target is visible in that view;
* ``visible``: share of scored frames whose view shows the target;
* ``instructions``: the cIoU per view and stage over each instruction's frames, which shows
  whether the mask finds every task's target (two tasks on one object share a mask and
  differ only in the verb: the goal and long suites' push and place tasks).

No augmentation, the policy in eval mode; the backbone runs on the images, the instruction
and the token sources' blocks (the head's blocks come after ``<SEG>`` and cannot change it).

:func:`point_error` scores the ``target_point`` loss's projector the same way: on the same
frames, per view, the mean absolute error per axis (pixels of the view) between its predicted
centroid and the target mask's, over frames where the target is visible, beside the same error
of always answering the view's centre (the floor a location-blind model reaches) and the
visibility accuracy. There the backbone also runs the head's blocks, which the projector reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vlaworks.batch import Batch
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.processing import collate

STAGES = ("coarse", "fine")


def mask_iou(
    policy_or_path: Any, data: str | Path, *, every: int = 4, batch_size: int = 16
) -> dict[str, Any]:
    """Mask IoU per view and stage (module docstring) of a policy (object, checkpoint or run
    folder) with a ``seg_mask`` loss on the dataset at ``data``."""
    from vlaworks.models.aux.seg import SegMaskLoss, overlap

    policy, aux, n_frames, batches = _held_out(
        policy_or_path,
        data,
        SegMaskLoss,
        "mask_iou needs a policy trained with the seg_mask aux loss (and the seg token source)",
        every,
        batch_size,
    )
    cameras = policy.config.cameras
    per_frame = {s: torch.zeros(len(cameras)) for s in STAGES}
    #: instruction -> stage -> [intersection, union] per view (the totals are their sums)
    by_instruction: dict[str, dict[str, torch.Tensor]] = {}
    visible = torch.zeros(len(cameras))
    for batch in batches:
        out = policy.backbone(batch.images, batch.instructions, policy.prefix(batch))
        target = aux.target(batch)
        seen = target.flatten(-2).any(-1).cpu()  # [B, V]
        visible += seen.sum(0)
        for stage, logits in zip(STAGES, aux.masks(out, batch), strict=True):
            i, u = (t.cpu().float() for t in overlap(logits, target))
            per_frame[stage] += torch.where(seen, i / u.clamp(min=1), 0.0).sum(0)
            for row, instruction in enumerate(batch.instructions):
                sums = by_instruction.setdefault(
                    instruction, {st: torch.zeros(2, len(cameras)) for st in STAGES}
                )
                sums[stage] += torch.stack([i[row], u[row]])
    total = {stage: sum(sums[stage] for sums in by_instruction.values()) for stage in STAGES}
    views: dict[str, Any] = {}
    for v, camera in enumerate(cameras):
        shown = float(visible[v])
        views[camera] = {"visible": shown / n_frames}
        for stage in STAGES:
            views[camera][stage] = {
                "ciou": _ratio(total[stage][0, v], total[stage][1, v]),
                "giou": float(per_frame[stage][v] / shown) if shown > 0 else float("nan"),
            }
    instructions = {
        instruction: {
            camera: {stage: _ratio(sums[stage][0, v], sums[stage][1, v]) for stage in STAGES}
            for v, camera in enumerate(cameras)
        }
        for instruction, sums in sorted(by_instruction.items())
    }
    return {"frames": n_frames, "mask_size": aux.mask_size, "views": views, "instructions": instructions}


def point_error(
    policy_or_path: Any, data: str | Path, *, every: int = 4, batch_size: int = 16
) -> dict[str, Any]:
    """Centroid error per view (module docstring) of a policy (object, checkpoint or run
    folder) with a ``target_point`` loss on the dataset at ``data``."""
    from vlaworks.models.aux.point import TargetPointLoss

    policy, aux, n_frames, batches = _held_out(
        policy_or_path,
        data,
        TargetPointLoss,
        "point_error needs a policy trained with the target_point aux loss",
        every,
        batch_size,
    )
    cameras = policy.config.cameras
    error, centre_error, visible, vis_correct = (torch.zeros(len(cameras)) for _ in range(4))
    for batch in batches:
        centre, seen = (t.cpu() for t in aux.targets(batch))
        pred, logit = (t.cpu() for t in aux.predict(policy.encode(batch, training=False)))
        scale = seen.float() * batch.target_masks.shape[-1] / 4  # mean |Δ| over x, y, [-1, 1] -> px
        error += ((pred - centre).abs().sum(-1) * scale).sum(0)
        centre_error += (centre.abs().sum(-1) * scale).sum(0)
        visible += seen.sum(0)
        vis_correct += ((logit > 0) == seen).sum(0)
    views = {
        camera: {
            "visible": float(visible[v]) / n_frames,
            "l1_px": _ratio(error[v], visible[v]),
            "l1_px_centre": _ratio(centre_error[v], visible[v]),
            "vis_acc": float(vis_correct[v]) / n_frames,
        }
        for v, camera in enumerate(cameras)
    }
    return {"frames": n_frames, "views": views}


def _held_out(
    policy_or_path: Any, data: str | Path, aux_type: type, needs: str, every: int, batch_size: int
) -> tuple[Any, Any, int, Iterator[Batch]]:
    """The loaded policy, its first aux loss of ``aux_type`` (``needs`` names it in the error
    when there is none), the number of scored frames (every ``every``-th window of ``data``)
    and a generator of their batches, run with the policy in eval mode and without gradients
    (its mode restored after the last batch)."""
    from vlaworks.models.checkpoint import load_policy

    if every < 1 or batch_size < 1:
        raise ValueError(f"every and batch_size must be >= 1; got {every}, {batch_size}.")
    policy = load_policy(policy_or_path)
    found = [a for a in policy.aux_losses if isinstance(a, aux_type)]
    if not found:
        raise ValueError(f"{needs}.")
    windows = WindowDataset(LeRobotDataset(Path(data)), policy.processor, training=False)
    frames = list(range(0, len(windows), every))

    def batches() -> Iterator[Batch]:
        was_training = policy.training
        policy.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(frames), batch_size):
                    rows = [windows[i] for i in frames[start : start + batch_size]]
                    yield collate(rows).to(policy.device)
        finally:
            policy.train(was_training)

    return policy, found[0], len(frames), batches()


def _ratio(intersection: torch.Tensor, union: torch.Tensor) -> float:
    """A ratio of sums (cIoU of summed pixels, a mean over counted frames); NaN where the
    denominator is 0."""
    return float(intersection / union) if union > 0 else float("nan")

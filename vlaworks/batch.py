"""The one batch contract every model, head and auxiliary loss reads from.

A :class:`Batch` is produced by the data layer's collate function (robot windows or
vision-language samples) and by the evaluator / policy server from live observations.
Every module reads only the fields it needs; optional fields are ``None`` when absent.

Conventions
-----------
* ``images``: ``[B, V, 3, H, W]`` ``uint8`` (0..255) in the order of ``camera_names``.
  Backbones convert to their own float normalisation.
* ``actions``: ``[B, T, 7]`` float32, *normalised* (the policy's normaliser maps raw
  env actions to and from this space). ``action_mask``: ``[B, T]`` bool, True where the
  step is real (False for padding past the episode end).
* ``state``: ``[B, S]`` float32, normalised.
* ``pixel_masks`` / ``target_masks``: ``[B, V, H, W]`` bool.
* ``visual_prompts``: per sample, a list of :class:`VisualPrompt` in normalised
  image coordinates (0..1, x to the right, y down).
* Vision-language samples carry ``vl_prompt`` / ``vl_answer`` strings instead of actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal

import torch

PromptKind = Literal["point", "line", "box", "mask"]


@dataclass(frozen=True)
class VisualPrompt:
    """A SAM-style visual prompt on one camera view, in normalised coordinates.

    ``coords`` holds ``[[x, y]]`` for a point, ``[[x0, y0], [x1, y1]]`` for a line or a
    box (corners); ``mask`` is an ``[H, W]`` bool tensor for a mask prompt.
    """

    kind: PromptKind
    view: int = 0
    coords: tuple[tuple[float, float], ...] = ()
    mask: torch.Tensor | None = None


@dataclass
class Batch:
    """A typed batch; see the module docstring for shapes and conventions."""

    images: torch.Tensor
    instructions: list[str]
    camera_names: tuple[str, ...] = ("base",)
    state: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    action_mask: torch.Tensor | None = None
    pixel_masks: torch.Tensor | None = None
    visual_prompts: list[list[VisualPrompt]] | None = None
    target_masks: torch.Tensor | None = None
    geometry: torch.Tensor | None = None
    vl_prompt: list[str] | None = None
    vl_answer: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 5 or self.images.shape[2] != 3:
            raise ValueError(
                f"Batch.images must be [B, V, 3, H, W]; got shape {tuple(self.images.shape)}. "
                "Stack cameras on dim 1 and put channels first."
            )
        b, v = self.images.shape[:2]
        if len(self.instructions) != b:
            raise ValueError(f"Batch has {b} image rows but {len(self.instructions)} instructions.")
        if len(self.camera_names) != v:
            raise ValueError(
                f"Batch.images has {v} views but camera_names lists {len(self.camera_names)}: "
                f"{self.camera_names}."
            )
        if self.actions is not None:
            if self.actions.ndim != 3 or self.actions.shape[0] != b:
                raise ValueError(f"Batch.actions must be [B, T, D]; got {tuple(self.actions.shape)}.")
            if not torch.isfinite(self.actions).all():
                raise ValueError("Batch.actions contains NaN or inf; check the dataset's action column.")
            if self.action_mask is None:
                self.action_mask = torch.ones(self.actions.shape[:2], dtype=torch.bool)

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    @property
    def is_vl(self) -> bool:
        """True for a vision-language (co-training) batch: text answers, no actions."""
        return self.vl_answer is not None and self.actions is None

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor field to ``device`` (non-tensor fields are shared)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device, non_blocking=True)
        return replace(self, **moved)

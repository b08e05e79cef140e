"""Per-level features of a ViT tower: the inputs of PixelVLA's multiscale pixel-aware encoder.

Seed 000 (section 4.1) encodes the observation with SigLIP "to obtain multi-level visual
features ``F_v = {f_v^i in R^{H_i x W_i x D_i}}_{i=1..L}``". For a ViT tower level ``0`` is
its patch embeddings and level ``i`` the output of its layer ``i`` (the ``hidden_states``
of ``transformers`` vision models), all on the patch grid; a backbone exposes them through
``Backbone.vision_level_dims`` / ``Backbone.vision_levels``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def check_levels(levels: Sequence[int], count: int) -> list[int]:
    """``levels`` as non-negative indices into ``count`` levels; out of range is an error."""
    bad = [i for i in levels if not -count <= i < count]
    if bad or not levels:
        raise ValueError(
            f"Vision feature levels {list(levels)} do not index this tower's {count} levels "
            f"(0 .. {count - 1}, or negative from the deepest); pick levels in that range."
        )
    return [i % count for i in levels]


def vit_levels(tower: nn.Module, pixel_values: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
    """Hidden states ``levels`` of a ``transformers`` ViT ``tower`` (no CLS token, square patch
    grid) for normalised ``pixel_values`` ``[N, 3, S, S]``: each ``[N, C, g, g]``."""
    states = tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
    out = []
    for index in check_levels(levels, len(states)):
        x = states[index]
        n, p, c = x.shape
        g = math.isqrt(p)
        if g * g != p:
            raise ValueError(f"Level {index} holds {p} tokens, not a square patch grid (a CLS token?).")
        out.append(x.transpose(1, 2).reshape(n, c, g, g))
    return out


def tower_level_dims(config: object) -> tuple[int, ...]:
    """Widths of a ViT tower's levels from its config: patch embeddings + one per layer."""
    return (int(config.hidden_size),) * (int(config.num_hidden_layers) + 1)

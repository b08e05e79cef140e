"""Sequence assembly shared by every backbone: native prompt rows -> one padded batch.

A backbone describes each row's native prompt as a list of :class:`Piece` (text ids or a
run of image placeholder ids). :func:`assemble` left-pads the rows, appends the policy's
extra blocks at the end (so every block has one slice for the whole batch) and records,
per position, whether it is real, an image token, and which bidirectional group (if any)
it belongs to. :func:`attention_mask_4d` turns that into the explicit float additive
mask handed to stock transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from vlaworks.models.backbones.base import ExtraTokens

CAUSAL = -1
#: group id of a backbone's own bidirectional prefix (PaliGemma image tokens); extras use >= 0
PREFIX_GROUP = -2


@dataclass(frozen=True)
class Piece:
    """A run of token ids in a native prompt; ``kind="image"`` marks placeholder tokens
    whose embeddings are replaced by image features, ``bidirectional`` puts the run in the
    backbone's native bidirectional prefix."""

    ids: tuple[int, ...]
    kind: Literal["text", "image"] = "text"
    bidirectional: bool = False


@dataclass
class Assembled:
    """One batch's token layout (all ``[B, L]``)."""

    ids: torch.Tensor
    valid: torch.Tensor
    is_image: torch.Tensor
    group: torch.Tensor
    spans: dict[str, slice]
    extra_pos: dict[str, slice]


def assemble(rows: list[list[Piece]], extras: list[ExtraTokens] | tuple, pad_id: int) -> Assembled:
    """Pad ``rows`` to one length and append ``extras`` (ids of embedding blocks are ``pad_id``).

    Padding goes on the left of the per-row part of the prompt: right after the last image
    token (at the very left when a prompt has no image). Templates put the instruction
    after the images, so image tokens *and* extra blocks sit at the same indices in every
    row; padded positions are masked and skipped by the position ids, so a padded row
    computes exactly what it computes alone.
    """
    flat = []
    heads = set()
    for pieces in rows:
        ids: list[int] = []
        img: list[bool] = []
        grp: list[int] = []
        head = 0
        for p in pieces:
            ids += p.ids
            img += [p.kind == "image"] * len(p.ids)
            grp += [PREFIX_GROUP if p.bidirectional else CAUSAL] * len(p.ids)
            if p.kind == "image":
                head = len(ids)
        heads.add(head)
        flat.append((ids, img, grp, head))
    if len(heads) != 1:
        raise ValueError(
            "Rows differ in the prompt part up to the last image token; the native template "
            "must put per-row text (the instruction) after the images."
        )
    n_img = {sum(f[1]) for f in flat}
    if len(n_img) != 1:
        raise ValueError(
            f"Rows have different numbers of image tokens {sorted(n_img)}; give every row "
            "the same number of views at the same resolution."
        )
    prompt_len = max(len(f[0]) for f in flat)
    b = len(rows)
    n_extra = sum(e.length for e in extras)
    total = prompt_len + n_extra
    ids_t = torch.full((b, total), pad_id, dtype=torch.long)
    valid = torch.zeros((b, total), dtype=torch.bool)
    is_image = torch.zeros((b, total), dtype=torch.bool)
    group = torch.full((b, total), CAUSAL, dtype=torch.long)
    for r, (ids, img, grp, head) in enumerate(flat):
        pad = prompt_len - len(ids)
        keep = [i for i in range(prompt_len) if not head <= i < head + pad]
        ids_t[r, keep] = torch.tensor(ids, dtype=torch.long)
        valid[r, keep] = True
        is_image[r, keep] = torch.tensor(img)
        group[r, keep] = torch.tensor(grp)
    spans: dict[str, slice] = {}
    if is_image.any():
        idx = is_image[0].nonzero().flatten()
        spans["image"] = slice(int(idx[0]), int(idx[-1]) + 1)
    pos = prompt_len
    extra_pos: dict[str, slice] = {}
    for e in extras:
        if e.name in extra_pos or e.name == "image":
            raise ValueError(f"Duplicate extra block name {e.name!r}; give each block a unique name.")
        sl = slice(pos, pos + e.length)
        if e.ids is not None:
            if e.ids.shape[0] != b:
                raise ValueError(f"Extra block {e.name!r} has batch {e.ids.shape[0]}, expected {b}.")
            ids_t[:, sl] = e.ids.to(torch.long).cpu()
        elif e.embeds.shape[0] != b:
            raise ValueError(f"Extra block {e.name!r} has batch {e.embeds.shape[0]}, expected {b}.")
        valid[:, sl] = True
        if e.attention == "bidirectional":
            if e.group < 0:
                raise ValueError(f"Extra block {e.name!r}: group must be >= 0, got {e.group}.")
            group[:, sl] = e.group
        extra_pos[e.name] = sl
        pos += e.length
    spans.update(extra_pos)
    return Assembled(ids_t, valid, is_image, group, spans, extra_pos)


def attention_mask_4d(
    valid_k: torch.Tensor,
    group_q: torch.Tensor,
    group_k: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Float additive mask ``[B, 1, Lq, Lk]``; queries are the last ``Lq`` of the ``Lk`` keys.

    Key ``j`` is visible to query ``i`` when it is real and either ``j <= i`` (causal) or both
    lie in the same bidirectional group. A padded query sees itself only (no NaN rows).
    """
    b, lk = valid_k.shape
    lq = group_q.shape[1]
    qi = torch.arange(lk - lq, lk, device=valid_k.device)
    kj = torch.arange(lk, device=valid_k.device)
    allowed = kj[None, None, :] <= qi[None, :, None]
    same = (group_q[:, :, None] == group_k[:, None, :]) & (group_q[:, :, None] != CAUSAL)
    allowed = (allowed | same) & valid_k[:, None, :]
    allowed = allowed | (kj[None, None, :] == qi[None, :, None])
    mask = torch.zeros((b, 1, lq, lk), dtype=dtype, device=valid_k.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(dtype).min)


def positions_1d(valid: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Positions counting only real tokens (left padding gets 0): ``[B, L]`` long."""
    pos = valid.long().cumsum(-1) - 1
    if start is not None:
        pos = pos + start[:, None]
    return pos.clamp(min=0).masked_fill(~valid, 0)

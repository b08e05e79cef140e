"""Teacher-forced answers and greedy decoding through a backbone's own LM head, written once.

Three users read text (or text-like token) answers out of the backbone: vision-language
co-training and VQA (``VLAPolicy.text_loss`` / ``answer``), the token action heads
(string, bins, FAST answers, ``vlaworks.models.heads.token.head``) and VQA of a bare
backbone (``vlaworks.eval.vqa``). They share:

* :func:`pad_answers`: rows of answer ids -> right-padded ``[B, L]`` ids and the mask of
  positions the loss counts;
* :func:`text_answer_ids`: answer strings -> their ids + EOS, padded with EOS;
* :func:`answer_span_loss`: next-token cross-entropy (and token accuracy) on the span a
  teacher-forced answer block occupies, position ``i`` of the sequence predicting answer
  token ``i``; against one-hot ids, or soft targets over a subset of ids (bin tokens);
* :func:`greedy_decode`: KV-cached greedy text answers, or the uncached reference that
  re-runs the whole sequence for every token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens


def eos_id(backbone: Backbone) -> int:
    """The backbone tokenizer's EOS id, which ends every answer."""
    eos = getattr(backbone.tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("Answers need backbone.tokenizer.eos_token_id to end them; this tokenizer has none.")
    return int(eos)


def pad_answers(
    rows: Sequence[Sequence[int]], pad: int, masks: Sequence[Sequence[bool]] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad answer id rows with ``pad`` -> ids ``[B, L]`` and the loss mask ``[B, L]``
    (``masks`` per row, default every real token; padding is always False)."""
    if not rows:
        raise ValueError("pad_answers got no rows.")
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        keep[i, : len(row)] = torch.tensor(list(masks[i]) if masks is not None else [True] * len(row))
    return ids, keep


def text_answer_ids(backbone: Backbone, answers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced ids ``[B, L]`` of each answer + EOS (right-padded with EOS) and the mask
    of real answer tokens, on the backbone's device."""
    eos = eos_id(backbone)
    tok = backbone.tokenizer
    rows = [[*tok(text, add_special_tokens=False).input_ids, eos] for text in answers]
    ids, keep = pad_answers(rows, eos)
    device = backbone.input_embeddings().weight.device
    return ids.to(device), keep.to(device)


def answer_span_loss(
    backbone: Backbone,
    out: BackboneOutput,
    block: str,
    ids: torch.Tensor,
    keep: torch.Tensor,
    soft: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy over the kept answer tokens of block ``block`` (whose
    teacher-forced ids are ``ids``) and the matching greedy token accuracy (no grad).

    ``soft = (target_ids [K], target [B, L, K])`` scores each position against a distribution
    over the ids ``target_ids`` instead of the one-hot ``ids`` (the log-softmax still runs over
    the whole vocabulary, so mass elsewhere is penalised); the accuracy still counts ``ids``."""
    span = out.spans.get(block)
    if span is None:
        raise KeyError(f"Backbone output has no {block!r} span; add the teacher-forced answer block first.")
    hidden = out.hidden[:, span.start - 1 : span.stop - 1]  # position i predicts answer token i
    logits = backbone.lm_logits(hidden).float()
    if soft is None:
        ce = F.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none").view_as(ids)
    else:
        target_ids, target = soft
        ce = -(target.to(logits.device) * logits.log_softmax(-1)[..., target_ids]).sum(-1)
    weight = keep.float()
    total = weight.sum().clamp(min=1.0)
    loss = (ce * weight).sum() / total
    with torch.no_grad():
        acc = ((logits.argmax(-1) == ids).float() * weight).sum() / total
    return loss, acc


@torch.no_grad()
def greedy_decode(
    backbone: Backbone,
    images: torch.Tensor,
    prompts: list[str],
    prefix: Sequence[ExtraTokens] = (),
    max_new_tokens: int = 32,
    *,
    use_cache: bool = True,
) -> list[str]:
    """Greedy answers to ``prompts`` about ``images`` (``[B, V, 3, H, W]``) after the ``prefix``
    blocks, stopping at EOS or after ``max_new_tokens``; special tokens are stripped.

    With ``use_cache`` the prompt is encoded once and tokens are fed by ``backbone.step``;
    without, the whole sequence (generated tokens as one id block) is re-run for every
    token: slower, and the reference the cached path must match.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}.")
    eos = eos_id(backbone)
    out = backbone(images, list(prompts), list(prefix), use_cache=use_cache)
    last, cache = out.hidden[:, -1], out.cache
    done = torch.zeros(len(prompts), dtype=torch.bool, device=last.device)
    generated: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        token = backbone.lm_logits(last).argmax(-1)
        token = torch.where(done, torch.full_like(token, eos), token)
        generated.append(token)
        done |= token == eos
        if bool(done.all()):
            break
        if use_cache:
            hidden, cache = backbone.step(token[:, None], cache)
            last = hidden[:, -1]
        else:
            block = ExtraTokens("answer", ids=torch.stack(generated, dim=1))
            last = backbone(images, list(prompts), [*prefix, block]).hidden[:, -1]
    texts = []
    for row in torch.stack(generated, dim=1).tolist():
        row = row[: row.index(eos)] if eos in row else row
        texts.append(backbone.tokenizer.decode(row, skip_special_tokens=True))
    return texts

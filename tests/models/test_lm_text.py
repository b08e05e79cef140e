"""Shared LM-text steps: answer padding, teacher-forced answer ids, the answer-span loss and
cached greedy decoding (equal to the uncached reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.lm_text import answer_span_loss, greedy_decode, pad_answers, text_answer_ids


def random_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 3, 32, 32), dtype=torch.uint8, generator=g)

def test_pad_answers_right_pads_and_masks() -> None:
    ids, keep = pad_answers([[5, 6, 7], [8]], pad=0, masks=[[True, False, True], [True]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert keep.tolist() == [[True, False, True], [True, False, False]]


def test_text_answers_end_with_eos(chatty_backbone) -> None:
    ids, keep = text_answer_ids(chatty_backbone, ["left of the bowl", "2"])
    eos = chatty_backbone.tokenizer.eos_token_id
    lengths = keep.sum(1).tolist()
    assert lengths[0] > lengths[1] >= 2
    assert ids[0, lengths[0] - 1] == eos and ids[1, lengths[1] - 1] == eos
    assert (ids[1, lengths[1] :] == eos).all()


def test_answer_span_loss_is_next_token_cross_entropy(chatty_backbone) -> None:
    ids, keep = text_answer_ids(chatty_backbone, ["left"])
    images = random_images(1, 0)
    out = chatty_backbone(images, ["Where is the bowl?"], [ExtraTokens("answer", ids=ids)])
    loss, acc = answer_span_loss(chatty_backbone, out, "answer", ids, keep)
    logits = chatty_backbone.lm_logits(out.hidden[0, -ids.shape[1] - 1 : -1]).float()
    assert loss.item() == pytest.approx(F.cross_entropy(logits, ids[0]).item(), rel=1e-5)
    assert acc.item() == pytest.approx((logits.argmax(-1) == ids[0]).float().mean().item())
    with pytest.raises(KeyError, match="no 'other' span"):
        answer_span_loss(chatty_backbone, out, "other", ids, keep)


def test_cached_greedy_decoding_equals_full_reforward(chatty_backbone) -> None:
    prompts = ["point to the red cube", "how many cubes are on the table?", "describe the scene"]
    images = random_images(3, 0)
    cached = greedy_decode(chatty_backbone, images, prompts, max_new_tokens=8)
    full = greedy_decode(chatty_backbone, images, prompts, max_new_tokens=8, use_cache=False)
    assert cached == full
    assert len({*cached}) > 1 and all(cached)  # rows differ: left padding is exercised
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(chatty_backbone, images, prompts, max_new_tokens=0)

"""Bins-only additions to OpenVLA's token head: HL-Gauss soft targets (``label_sigma``) and
expected-value decoding (``decoding="mean"``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from token_fakes import make_batch

from vlaworks.models.heads.token import BinTokenizer, StringTokenizer
from vlaworks.models.heads.token.head import TokenActionHead, TokenHeadOptions

CHUNK, DIM = 4, 7


def test_soft_targets_are_a_gaussian_over_bins():
    tok = BinTokenizer(8)  # bin width 0.25, centres -0.875 ... 0.875
    target = tok.soft_targets(torch.tensor([0.125, 1.0]), sigma=1.0)
    assert target.shape == (2, 8) and torch.allclose(target.sum(-1), torch.ones(2))
    # 0.125 is bin 4's centre: symmetric about it
    assert int(target[0].argmax()) == 4 and target[0, 3] == pytest.approx(float(target[0, 5]), abs=1e-6)
    # one bin width of std: the centre bin holds ndtr(0.5) - ndtr(-0.5) of the mass
    assert float(target[0, 4]) == pytest.approx(0.3829, abs=2e-3)
    # a value at the edge of the range keeps all its mass inside [-1, 1], highest in the last bin
    assert int(target[1].argmax()) == 7 and target[1, 7] > target[1, 6] > target[1, 5]


def test_soft_targets_narrow_to_one_hot():
    tok = BinTokenizer(256)
    values = torch.tensor([-0.3, 0.002, 0.77])  # none on a bin edge
    hard = torch.tensor(tok.encode(values.numpy()[None]))
    assert torch.equal(tok.soft_targets(values, sigma=0.01).argmax(-1), hard)
    assert tok.soft_targets(values, sigma=0.01).max(-1).values.min() > 0.99


def test_expectation_is_the_mean_of_the_bin_centres():
    tok = BinTokenizer(4)  # centres -0.75, -0.25, 0.25, 0.75
    probs = np.array([[0.45, 0, 0, 0.55], [0, 2.0, 2.0, 0]])  # second row unnormalised
    assert tok.expectation(probs) == pytest.approx([0.45 * -0.75 + 0.55 * 0.75, 0.0])


def test_label_sigma_loss_is_lower_for_near_misses(backbone):
    """With soft targets the loss prefers a prediction one bin off to one far off; one-hot
    cross-entropy scores both the same."""
    batch = make_batch(2, CHUNK, DIM)
    batch.actions.fill_(0.0)
    for sigma, ordered in ((2.0, True), (0.0, False)):
        head = TokenActionHead(BinTokenizer(256), CHUNK, DIM, label_sigma=sigma)
        extras = head.extra_tokens(batch, backbone, training=True)
        out = backbone(batch.images, batch.instructions, extras)
        losses = []
        for offset in (1, 60):  # put all logit mass on the bin `offset` away from the truth
            logits = torch.full((2, CHUNK * DIM, backbone.input_embeddings().num_embeddings), -30.0)
            logits[..., head.symbol_ids[128 + offset]] = 30.0
            fixed = lambda hidden, logits=logits: logits  # noqa: E731
            original = backbone.lm_logits
            backbone.lm_logits = fixed
            try:
                losses.append(float(head.loss(out, batch)[0]))
            finally:
                backbone.lm_logits = original
        assert (losses[0] < losses[1]) is ordered
        if not ordered:
            assert losses[0] == pytest.approx(losses[1])


def test_mean_decoding_returns_expected_values(backbone):
    head = TokenActionHead(BinTokenizer(256), CHUNK, DIM, decoding="mean")
    batch = make_batch(2, CHUNK, DIM)
    chunk = head.predict(batch, backbone, [])
    symbols = head.decode_symbols(batch, backbone, [])
    assert chunk.shape == (2, CHUNK, DIM)
    # each value lies in the bin that was fed back, and differs from that bin's centre
    centres = torch.from_numpy(BinTokenizer(256).decode(symbols[0], CHUNK, DIM))
    assert torch.all((chunk[0] - centres).abs() <= BinTokenizer(256).bin_width / 2 + 1e-6)
    assert not torch.allclose(chunk[0], centres)


def test_mean_and_soft_targets_need_bins():
    with pytest.raises(ValueError, match="needs bin tokens"):
        TokenActionHead(StringTokenizer(), CHUNK, DIM, decoding="mean")
    with pytest.raises(ValueError, match="needs bin tokens"):
        TokenActionHead(StringTokenizer(), CHUNK, DIM, label_sigma=1.0)
    with pytest.raises(ValueError, match="label_sigma"):
        TokenHeadOptions(label_sigma=-1.0)

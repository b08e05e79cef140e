"""TokenActionHead on the tiny GPT-2 backbone: loss, cached decoding, grammar, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from token_fakes import RESERVED, TinyGPT2Backbone, make_batch, smooth_chunks

from vlaworks.models.heads.token import BinTokenizer, FastTokenizer, StringTokenizer
from vlaworks.models.heads.token.head import TokenActionHead, TokenHeadOptions

CHUNK, DIM = 4, 7


def heads() -> list[TokenActionHead]:
    fast = FastTokenizer(chunk=CHUNK, action_dim=DIM, vocab_size=96).fit(smooth_chunks(200, CHUNK, DIM))
    return [
        TokenActionHead(BinTokenizer(256), CHUNK, DIM),
        TokenActionHead(StringTokenizer(), CHUNK, DIM),
        TokenActionHead(fast, CHUNK, DIM),
    ]


@pytest.mark.parametrize("head", heads(), ids=["bins", "string", "fast"])
def test_loss_backward_reaches_backbone(backbone, head):
    batch = make_batch(3, CHUNK, DIM)
    extras = head.extra_tokens(batch, backbone, training=True)
    out = backbone(batch.images, batch.instructions, extras)
    loss, metrics = head.loss(out, batch)
    backbone.zero_grad()
    loss.backward()
    assert torch.isfinite(loss) and metrics["token_ce"] > 0
    assert backbone.lm.transformer.wte.weight.grad.abs().sum() > 0
    assert backbone.image_proj.weight.grad.abs().sum() > 0


def test_answer_block_matches_tokenizer_and_masks_padded_steps(backbone):
    head = TokenActionHead(StringTokenizer(), CHUNK, DIM)
    batch = make_batch(2, CHUNK, DIM)
    batch.action_mask[1, 2:] = False
    head.bind(backbone)
    ids, keep = head.answer_ids(batch)
    chars = backbone.tokenizer.convert_ids_to_tokens(ids[0].tolist())
    expected = StringTokenizer().to_text(batch.actions[0].numpy())
    assert "".join(chars[: len(expected)]) == expected and chars[len(expected)] == "<eos>"
    assert keep[0][: len(expected) + 1].all()
    row1 = StringTokenizer().to_text(batch.actions[1].numpy())
    steps_0_1 = len(",".join(row1.split(",")[:2])) + 1  # tokens of steps 0 and 1 plus their comma
    assert keep[1][:steps_0_1].all() and not keep[1][steps_0_1 : len(row1)].any()
    assert keep[1][len(row1)] and not keep[1][len(row1) + 1 :].any()  # EOS counts, padding does not


def test_bins_use_reserved_range_at_vocab_end(backbone):
    head = TokenActionHead(BinTokenizer(256), CHUNK, DIM)
    head.bind(backbone)
    vocab = backbone.input_embeddings().num_embeddings
    assert head.symbol_ids[:-1].tolist() == list(range(vocab - 256, vocab))
    assert head.symbol_ids[-1] == backbone.tokenizer.eos_token_id


def test_reserved_range_rejects_special_tokens(backbone):
    head = TokenActionHead(BinTokenizer(256), CHUNK, DIM, id_range=(0, 256))
    with pytest.raises(ValueError, match="special tokens"):
        head.bind(backbone)
    assert RESERVED >= 256


@pytest.mark.parametrize("head", heads(), ids=["bins", "string", "fast"])
def test_cached_decoding_equals_full_reforward(backbone, head):
    batch = make_batch(3, CHUNK, DIM, seed=1)
    cached = head.decode_symbols(batch, backbone, [], use_cache=True)
    reforward = head.decode_symbols(batch, backbone, [], use_cache=False)
    assert cached == reforward
    pred = head.predict(batch, backbone, [])
    assert pred.shape == (3, CHUNK, DIM) and pred.dtype == torch.float32
    assert pred.abs().max() <= 1.0


def test_string_head_decodes_well_formed_numbers_from_untrained_model(backbone):
    head = TokenActionHead(StringTokenizer(), CHUNK, DIM)
    batch = make_batch(3, CHUNK, DIM, seed=2)
    for row in head.decode_symbols(batch, backbone, []):
        assert head.tokenizer.is_well_formed(row, CHUNK, DIM)


def test_batched_decoding_matches_row_by_row(backbone):
    head = TokenActionHead(StringTokenizer(), CHUNK, DIM)
    batch = make_batch(3, CHUNK, DIM, seed=3)
    together = head.predict(batch, backbone, [])
    for i in range(3):
        single = make_batch(3, CHUNK, DIM, seed=3)
        single.images, single.instructions = single.images[i : i + 1], single.instructions[i : i + 1]
        single.actions = single.action_mask = None
        alone = head.predict(single, backbone, [])
        np.testing.assert_allclose(alone[0].numpy(), together[i].numpy(), atol=1e-4)


def test_training_makes_teacher_forced_answer_likely(backbone):
    """A few steps on one batch drive the string head to decode the target exactly."""
    model = TinyGPT2Backbone(seed=1)
    head = TokenActionHead(BinTokenizer(256), 2, 2)
    batch = make_batch(1, 2, 2, seed=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(60):
        out = model(batch.images, batch.instructions, head.extra_tokens(batch, model, training=True))
        loss, _ = head.loss(out, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = head.predict(batch, model, [])
    assert (pred - batch.actions).abs().max() <= head.tokenizer.bin_width / 2 + 1e-6


def test_fast_tokenizer_travels_in_the_state_dict(backbone, tmp_path, fake_backbones):
    from safetensors.torch import load_model, save_model

    from vlaworks.models.config import PartSpec, PolicyConfig

    config = PolicyConfig(backbone="fake", head=PartSpec("token", {"tokenizer": "fast"}), chunk_size=CHUNK)
    head = TokenActionHead.from_config(backbone, config, TokenHeadOptions(tokenizer="fast", vocab_size=96))
    head.fit_tokenizer(smooth_chunks(200, CHUNK, DIM))
    batch = make_batch(2, CHUNK, DIM, seed=5)
    expected = head.decode_symbols(batch, backbone, [])
    save_model(head, str(tmp_path / "head.safetensors"))

    unfitted = TokenHeadOptions(tokenizer="fast", vocab_size=96)
    fresh = TokenActionHead.from_config(backbone, config, unfitted)
    load_model(fresh, str(tmp_path / "head.safetensors"))
    assert fresh.tokenizer.n_symbols == head.tokenizer.n_symbols
    chunk = smooth_chunks(1, CHUNK, DIM, seed=7)[0]
    assert fresh.tokenizer.encode(chunk) == head.tokenizer.encode(chunk)
    assert fresh.decode_symbols(batch, backbone, []) == expected


def test_from_config_string_head_and_unfitted_fast_error(backbone, fake_backbones):
    from vlaworks.models.config import PartSpec, PolicyConfig

    config = PolicyConfig(backbone="fake", head=PartSpec("token"), chunk_size=2, action_dim=3)
    head = TokenActionHead.from_config(backbone, config, TokenHeadOptions(tokenizer="string", decimals=3))
    assert head.tokenizer.decimals == 3 and head.chunk == 2 and head.action_dim == 3
    fast = TokenActionHead.from_config(backbone, config, TokenHeadOptions(tokenizer="fast"))
    with pytest.raises(RuntimeError, match="not fitted"):
        fast.predict(make_batch(1, 2, 3), backbone, [])


def test_input_noise_corrupts_only_value_inputs_in_training(backbone):
    head = TokenActionHead(StringTokenizer(), CHUNK, DIM, input_noise=0.5)
    batch = make_batch(4, CHUNK, DIM)
    head.bind(backbone)
    clean, _ = head.answer_ids(batch)
    head.train()
    torch.manual_seed(0)
    noisy = head.extra_tokens(batch, backbone, training=True)[0].ids
    torch.manual_seed(0)
    again = head.extra_tokens(batch, backbone, training=True)[0].ids
    assert torch.equal(noisy, again)  # seeded: the same run corrupts the same tokens
    digits = torch.isin(clean, head.symbol_ids[:10])
    changed = noisy != clean
    assert not changed[~digits].any()  # signs, points, separators and EOS stay put
    assert torch.isin(noisy[digits], head.symbol_ids[:10]).all()
    assert 0.3 < changed[digits].float().mean() < 0.6  # p = 0.5, minus draws of the same digit
    assert torch.equal(head.answer_ids(batch)[0], clean)  # the loss's targets stay clean
    head.eval()
    assert torch.equal(head.extra_tokens(batch, backbone, training=True)[0].ids, clean)


def test_input_noise_option_is_checked():
    with pytest.raises(ValueError, match="input_noise"):
        TokenHeadOptions(input_noise=1.0)


def test_a_training_step_encodes_its_answers_once(backbone, monkeypatch):
    """extra_tokens and loss of one step share one encoding of the batch's chunks; the next
    batch is encoded anew (not served the previous answers)."""
    tokenizer = StringTokenizer()
    calls = []
    encode = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode", lambda chunk: calls.append(1) or encode(chunk))
    head = TokenActionHead(tokenizer, CHUNK, DIM)
    for rows in (2, 3):
        batch = make_batch(rows, CHUNK, DIM)
        out = backbone(batch.images, batch.instructions, head.extra_tokens(batch, backbone, training=True))
        head.loss(out, batch)
        assert len(calls) == rows  # one encode per chunk of this batch
        calls.clear()
        ids, _ = head.answer_ids(batch)
        assert ids.shape[0] == rows


def test_a_fast_vocabulary_larger_than_the_lm_names_the_option_that_fits(backbone, monkeypatch):
    fast = FastTokenizer(chunk=CHUNK, action_dim=DIM, vocab_size=96).fit(smooth_chunks(200, CHUNK, DIM))
    vocab = backbone.input_embeddings().num_embeddings
    monkeypatch.setattr(FastTokenizer, "n_symbols", property(lambda self: vocab + 1))
    with pytest.raises(ValueError, match=r"policy\.head\.options\.vocab_size="):
        TokenActionHead(fast, CHUNK, DIM).bind(backbone)

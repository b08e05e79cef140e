"""TokenActionHead on the real tiny Prismatic backbone (native prompt, KV cache, tokenizer)."""

from __future__ import annotations

import pytest
import torch
from token_fakes import make_batch, smooth_chunks

from vlaworks.models.backbones import build_backbone
from vlaworks.models.heads.token import BinTokenizer, FastTokenizer, StringTokenizer, TokenActionHead

CHUNK, DIM = 2, 7


@pytest.fixture(scope="module")
def prismatic():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build_backbone("prismatic-tiny", image_size=32).eval()


def batch(seed: int = 0):
    b = make_batch(2, CHUNK, DIM, seed=seed)
    b.images = torch.nn.functional.interpolate(b.images.flatten(0, 1).float(), size=32).round()
    b.images = b.images.to(torch.uint8).view(2, 1, 3, 32, 32)
    return b


def test_string_symbols_are_single_text_tokens(prismatic):
    head = TokenActionHead(StringTokenizer(), CHUNK, DIM)
    head.bind(prismatic)
    chars = prismatic.tokenizer.convert_ids_to_tokens(head.symbol_ids[:-1].tolist())
    assert len(set(head.symbol_ids.tolist())) == head.tokenizer.n_symbols + 1
    assert [prismatic.tokenizer.decode([i]) for i in head.symbol_ids[:10].tolist()] == list("0123456789")
    assert len(chars) == 14


@pytest.mark.parametrize("kind", ["bins", "string", "fast"])
def test_prismatic_loss_and_cached_decoding(prismatic, kind):
    tok = {
        "bins": BinTokenizer(),
        "string": StringTokenizer(),
        "fast": FastTokenizer(CHUNK, DIM, vocab_size=64).fit(smooth_chunks(100, CHUNK, DIM)),
    }[kind]
    head = TokenActionHead(tok, CHUNK, DIM)
    b = batch()
    out = prismatic(b.images, b.instructions, head.extra_tokens(b, prismatic, training=True))
    loss, _ = head.loss(out, b)
    assert torch.isfinite(loss)
    cached = head.decode_symbols(b, prismatic, [], use_cache=True)
    assert cached == head.decode_symbols(b, prismatic, [], use_cache=False)
    if kind == "string":
        assert all(tok.is_well_formed(row, CHUNK, DIM) for row in cached)
    assert head.predict(b, prismatic, []).shape == (2, CHUNK, DIM)

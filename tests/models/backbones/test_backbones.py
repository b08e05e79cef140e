"""Contract tests of every tiny backbone: forward/backward, masks, padding, cache, save/reload."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import BACKBONES, build_backbone
from vlaworks.models.backbones.base import ExtraTokens

#: every VLM family's registry model (the CNN trunk has no LM: tests/models/backbones/test_cnn.py)
TINY_NAMES = [name for name in BACKBONES.names() if name != "cnn"]

_CACHE: dict[str, torch.nn.Module] = {}
ATOL = 1e-5


def backbone(name: str):
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = build_backbone(name).eval()
    return _CACHE[name]


def images(b: int, v: int = 1, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, v, 3, size, size), generator=g, dtype=torch.uint8)


def emb(b: int, n: int, h: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, n, h, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TINY_NAMES)
def test_forward_backward(name):
    m = backbone(name)
    q = emb(2, 2, m.hidden_size).requires_grad_(True)
    out = m(images(2, 2), ["pick up the red cube", "push the bowl"], [ExtraTokens("q", embeds=q)])
    assert out.hidden.shape[0] == 2 and out.hidden.shape[-1] == m.hidden_size
    assert out.spans["q"] == slice(out.hidden.shape[1] - 2, out.hidden.shape[1])
    assert out.image_features.shape[0] == 2 and out.image_features.shape[-1] == m.hidden_size
    logits = m.lm_logits(out.hidden[:, out.spans["q"]])
    assert logits.shape[-1] == m.input_embeddings().num_embeddings
    (logits.square().mean() + out.hidden.square().mean()).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    vision_grads = [p.grad for mod in m.vision_modules() for p in mod.parameters() if p.grad is not None]
    assert vision_grads and any(g.abs().sum() > 0 for g in vision_grads)
    assert m.input_embeddings().weight.grad is not None
    m.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", TINY_NAMES)
@torch.no_grad()
def test_bidirectional_block_sees_itself_but_not_leak_backwards(name):
    m = backbone(name)
    h = m.hidden_size
    a = ExtraTokens("a", embeds=emb(1, 2, h, 2))
    b1 = emb(1, 3, h, 3)
    b2 = b1.clone()
    b2[:, -1] += emb(1, 1, h, 4)[:, 0]  # not a constant shift: LayerNorm would erase that
    x = images(1)
    o1 = m(x, ["stack the cube"], [a, ExtraTokens("b", embeds=b1, attention="bidirectional")])
    o2 = m(x, ["stack the cube"], [a, ExtraTokens("b", embeds=b2, attention="bidirectional")])
    sb, sa = o1.spans["b"], o1.spans["a"]
    assert not torch.allclose(o1.hidden[:, sb.start], o2.hidden[:, sb.start], atol=1e-4)
    torch.testing.assert_close(o1.hidden[:, : sb.start], o2.hidden[:, : sb.start], atol=ATOL, rtol=0)
    torch.testing.assert_close(o1.hidden[:, sa], o2.hidden[:, sa], atol=ATOL, rtol=0)
    # a causal block never sees later tokens
    o3 = m(x, ["stack the cube"], [a, ExtraTokens("b", embeds=b2)])
    o4 = m(x, ["stack the cube"], [a, ExtraTokens("b", embeds=b1)])
    torch.testing.assert_close(o3.hidden[:, sb.start], o4.hidden[:, sb.start], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", TINY_NAMES)
@torch.no_grad()
def test_padding_matches_unpadded_rows(name):
    m = backbone(name)
    x = images(2, 2)
    texts = ["put the blue cylinder on the plate next to the red cube", "lift it"]
    q = emb(2, 2, m.hidden_size)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    blocks = [ExtraTokens("q", embeds=q, attention="bidirectional"), ExtraTokens("t", ids=ids)]
    both = m(x, texts, blocks)
    for r in range(2):
        one = m(
            x[r : r + 1],
            texts[r : r + 1],
            [
                ExtraTokens(
                    e.name,
                    embeds=None if e.embeds is None else e.embeds[r : r + 1],
                    ids=None if e.ids is None else e.ids[r : r + 1],
                    attention=e.attention,
                )
                for e in blocks
            ],
        )
        for key in ("q", "t", "image"):
            torch.testing.assert_close(
                both.hidden[r, both.spans[key]], one.hidden[0, one.spans[key]], atol=ATOL, rtol=0
            )


@pytest.mark.parametrize("name", TINY_NAMES)
@torch.no_grad()
def test_step_with_cache_equals_full_forward(name):
    m = backbone(name)
    x = images(2)
    texts = ["open the gripper", "pick up the green cube"]
    q = ExtraTokens("q", embeds=emb(2, 2, m.hidden_size), attention="bidirectional")
    ids = torch.tensor([[11, 12, 13], [14, 15, 16]])
    full = m(x, texts, [q, ExtraTokens("t", ids=ids)])
    pre = m(x, texts, [q], use_cache=True)
    h1, cache = m.step(ids[:, :1], pre.cache)
    h2, _ = m.step(ids[:, 1:], cache)
    got = torch.cat([h1, h2], dim=1)
    torch.testing.assert_close(got, full.hidden[:, full.spans["t"]], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", TINY_NAMES)
@torch.no_grad()
def test_save_reload_identical(name, tmp_path):
    m = backbone(name)
    x = images(1)
    blocks = [ExtraTokens("q", embeds=emb(1, 2, m.hidden_size), attention="bidirectional")]
    ref = m(x, ["pick up the cube"], blocks, output_hidden_states=True)
    m.save_pretrained(str(tmp_path))
    again = build_backbone(str(tmp_path)).eval()
    assert type(again) is type(m) and again.prompt_scheme == m.prompt_scheme
    out = again(x, ["pick up the cube"], blocks, output_hidden_states=True)
    torch.testing.assert_close(out.hidden, ref.hidden, atol=1e-6, rtol=0)
    assert len(out.hidden_states) == len(ref.hidden_states) > 1

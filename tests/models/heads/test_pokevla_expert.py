"""PokeVLA's action expert: the action-query block, output shapes with and without proprio and
<SEG>, gradient flow into every sub-block and the VLM, the L1 loss and one-call prediction."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PartSpec, PolicyConfig
from vlaworks.models.heads import build_head
from vlaworks.models.heads.pokevla_expert import (
    QUERY_BLOCK,
    QUERY_GROUP,
    SEG_BLOCK,
    PokeVLAExpertHead,
    PokeVLAExpertOptions,
)
from vlaworks.models.tokens.base import TokenSource

CHUNK, DIM, STATE = 3, 7, 5
SMALL = PokeVLAExpertOptions(width=16, layers=2, heads=2, queries=4)


def _batch(b: int = 2, views: int = 2, state: bool = True, mask: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (b, views, 3, 32, 32), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "push the bowl to the left"][:b],
        camera_names=("base", "wrist")[:views],
        actions=torch.rand(b, CHUNK, DIM, generator=g) * 2 - 1,
        action_mask=mask,
        state=torch.randn(b, STATE, generator=g) if state else None,
    )


def _seg_block(batch: Batch, width: int, n: int = 2) -> ExtraTokens:
    g = torch.Generator().manual_seed(1)
    return ExtraTokens(SEG_BLOCK, embeds=torch.randn(batch.size, n, width, generator=g))


class FakeSegSource(TokenSource):
    """Stands in for the ``seg`` token source: one learned causal token named ``seg``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(1, 1, width) * 0.02)

    def tokens(self, batch: Batch, backbone: Backbone) -> list[ExtraTokens]:
        return [ExtraTokens(SEG_BLOCK, embeds=self.embed.expand(batch.size, -1, -1))]


@dataclass
class _NoOptions:
    """The fake seg source takes no options."""


@pytest.fixture
def seg_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake ``seg`` token source for one test."""
    from vlaworks.models.tokens import TOKEN_SOURCES

    part = Part(_NoOptions, lambda backbone, config, options: FakeSegSource(backbone.hidden_size))
    monkeypatch.setitem(TOKEN_SOURCES.entries, "seg", part)


@pytest.fixture(scope="module")
def prismatic():
    torch.manual_seed(0)
    return build_backbone("prismatic-tiny", image_size=32).eval()


def test_action_queries_are_one_learnable_bidirectional_block(fake_backbone) -> None:
    head = PokeVLAExpertHead(32, CHUNK, DIM, options=SMALL)
    (block,) = head.extra_tokens(_batch(), fake_backbone, training=True)
    assert block.name == QUERY_BLOCK and block.embeds.shape == (2, 4, 32)
    assert (block.attention, block.group) == ("bidirectional", QUERY_GROUP)
    assert block.embeds.requires_grad and torch.equal(block.embeds[0], block.embeds[1])


@pytest.mark.parametrize(("seg", "state"), [(False, False), (False, True), (True, False), (True, True)])
def test_shapes_and_gradient_into_every_sub_block(fake_backbone, seg: bool, state: bool) -> None:
    """Every parameter of the expert (its <SEG> attention only when built with it) and the
    VLM receive gradient from the L1 loss; the chunk is [B, chunk, 7]."""
    torch.manual_seed(0)
    head = PokeVLAExpertHead(32, CHUNK, DIM, STATE if state else None, seg, SMALL)
    batch = _batch(state=state)
    blocks = ([_seg_block(batch, 32)] if seg else []) + head.extra_tokens(batch, fake_backbone, training=True)
    out = fake_backbone(batch.images, batch.instructions, blocks)
    assert head.decode(out, batch.state).shape == (2, CHUNK, DIM)
    loss, metrics = head.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["l1"] == pytest.approx(loss.item())
    no_grad = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    names = {n.split(".")[0] for n, _ in head.named_parameters()}
    assert ("seg_in" in names) == seg and ("proprio_in" in names) == state
    assert any(n.endswith("seg_attn.q.weight") for n, _ in head.named_parameters()) == seg
    assert head.layers[0].out.in_features == (4 if seg else 3) * 16
    assert fake_backbone.block.q_proj.weight.grad.abs().sum() > 0
    assert fake_backbone.vision.weight.grad.abs().sum() > 0


def test_one_seg_token_reaches_every_latent_through_its_value(fake_backbone) -> None:
    """With the paper's single <SEG> token the softmax over one key is 1: the attention hands
    the token's value to every latent, so its value path trains and its query projection
    gets a zero (not a missing) gradient, which DDP accepts."""
    torch.manual_seed(0)
    head = PokeVLAExpertHead(32, CHUNK, DIM, None, True, SMALL)
    batch = _batch(state=False)
    blocks = [_seg_block(batch, 32, n=1), *head.extra_tokens(batch, fake_backbone, training=True)]
    head.loss(fake_backbone(batch.images, batch.instructions, blocks), batch)[0].backward()
    attn = head.layers[0].seg_attn
    assert attn.kv.weight.grad.abs().sum() > 0 and head.seg_in[1].weight.grad.abs().sum() > 0
    # zero up to rounding: the softmax backward computes p * (g - p * g) with p = 1, which some
    # CPU kernels (AVX2) leave at ~1e-11 instead of exactly 0
    assert attn.q.weight.grad is not None
    assert attn.q.weight.grad.abs().max() <= 1e-6 * attn.kv.weight.grad.abs().max()


def test_each_context_changes_the_actions(fake_backbone) -> None:
    """The expert reads the query states, the image states, <SEG> and the state; not the text."""
    torch.manual_seed(0)
    head = PokeVLAExpertHead(32, CHUNK, DIM, STATE, True, SMALL).eval()
    batch = _batch()
    with torch.no_grad():
        blocks = [_seg_block(batch, 32), *head.extra_tokens(batch, fake_backbone, training=False)]
        out = fake_backbone(batch.images, batch.instructions, blocks)
        ref = head.decode(out, batch.state)

        def bumped(where: slice) -> torch.Tensor:
            hidden = out.hidden.clone()
            hidden[:, where] += torch.randn_like(hidden[:, where])
            return head.decode(BackboneOutput(hidden, out.spans, out.attention_mask), batch.state)

        for span in ("image", SEG_BLOCK, QUERY_BLOCK):
            assert not torch.allclose(bumped(out.spans[span]), ref)
        torch.testing.assert_close(bumped(slice(out.spans["image"].stop, out.spans[SEG_BLOCK].start)), ref)
        assert not torch.allclose(head.decode(out, batch.state + 1.0), ref)


def test_missing_seg_block_and_state_are_errors(fake_backbone) -> None:
    head = PokeVLAExpertHead(32, CHUNK, DIM, STATE, True, SMALL)
    batch = _batch()
    blocks = head.extra_tokens(batch, fake_backbone, training=True)
    out = fake_backbone(batch.images, batch.instructions, blocks)
    with pytest.raises(KeyError, match="no 'seg' span"):
        head.decode(out, batch.state)
    plain = PokeVLAExpertHead(32, CHUNK, DIM, STATE, False, SMALL)
    with pytest.raises(ValueError, match="reads the proprio state"):
        plain.decode(out, None)


def test_queries_see_the_prefix_and_each_other_not_the_reverse(prismatic) -> None:
    """On a real backbone: bumping one query embedding changes the other queries' states and
    leaves every prefix state (image, text, <SEG>) unchanged."""
    head = PokeVLAExpertHead(prismatic.hidden_size, CHUNK, DIM, options=SMALL)
    batch = _batch(1, views=1)
    seg = _seg_block(batch, prismatic.hidden_size)
    (block,) = head.extra_tokens(batch, prismatic, training=False)
    bumped = block.embeds.detach().clone()
    bumped[:, 1] += 1.0
    other = ExtraTokens(QUERY_BLOCK, embeds=bumped, attention="bidirectional", group=QUERY_GROUP)
    with torch.no_grad():
        a = prismatic(batch.images, batch.instructions, [seg, block])
        b = prismatic(batch.images, batch.instructions, [seg, other])
    q = a.spans[QUERY_BLOCK]
    torch.testing.assert_close(a.hidden[:, : q.start], b.hidden[:, : q.start], atol=1e-6, rtol=0)
    delta = (a.hidden[0, q] - b.hidden[0, q]).abs().amax(-1)
    assert (delta[[0, 2, 3]] > 1e-5).all()


def test_predict_is_one_backbone_call_with_a_binary_gripper(prismatic, monkeypatch) -> None:
    head = PokeVLAExpertHead(prismatic.hidden_size, CHUNK, DIM, STATE, options=SMALL).eval()
    calls = []
    forward = prismatic.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(prismatic, "forward", counting)
    batch = _batch()
    chunk = head.predict(batch, prismatic, [])
    monkeypatch.undo()
    assert len(calls) == 1 and chunk.shape == (2, CHUNK, DIM)
    assert set(chunk[..., -1].unique().tolist()) <= {-1.0, 1.0}
    with torch.no_grad():
        out = prismatic(batch.images, batch.instructions, head.extra_tokens(batch, prismatic, training=False))
    torch.testing.assert_close(chunk[..., :-1], head.decode(out, batch.state)[..., :-1])


def test_registry_reads_seg_and_state_from_the_config(fake_backbone, seg_source) -> None:
    spec = PartSpec("pokevla_expert", {"width": 16, "layers": 1, "heads": 2, "queries": 4})
    plain = PolicyConfig(backbone="fake", head=spec, chunk_size=CHUNK)
    head = build_head(plain.head, fake_backbone, plain)
    assert isinstance(head, PokeVLAExpertHead) and not head.seg and head.proprio_in is None
    assert (head.chunk, head.action_dim, head.width, head.num_queries) == (CHUNK, DIM, 16, 4)
    seg = PolicyConfig(
        backbone="fake", head=spec, chunk_size=CHUNK, token_sources=[PartSpec("seg")],
        use_state=True, state_dim=STATE,
    )
    head = build_head(seg.head, fake_backbone, seg)
    assert head.seg and head.proprio_in[0].in_features == STATE
    forced = PolicyConfig(
        backbone="fake", head=PartSpec("pokevla_expert", {"seg": False}), chunk_size=CHUNK,
        token_sources=[PartSpec("seg")],
    )
    assert not build_head(forced.head, fake_backbone, forced).seg
    with pytest.raises(ValueError, match="state_dim"):
        stateless = PolicyConfig(backbone="fake", head=spec, chunk_size=CHUNK, use_state=True)
        build_head(spec, fake_backbone, stateless)
    with pytest.raises(ValueError, match="did you mean 'queries'"):
        PolicyConfig(backbone="fake", head=PartSpec("pokevla_expert", {"querys": 8}), chunk_size=CHUNK)
    with pytest.raises(ValueError, match="must be >= 1"):
        PokeVLAExpertOptions(layers=0)
    with pytest.raises(ValueError, match="split into 3 heads"):
        PokeVLAExpertHead(32, CHUNK, DIM, options=PokeVLAExpertOptions(width=16, heads=3))


def test_policy_with_a_seg_source_trains_the_seg_path(fake_backbones, seg_source, normalizer) -> None:
    """Through the policy: the seg source's token and the expert's <SEG> attention train."""
    from vlaworks.models.policy import build_policy

    config = PolicyConfig(
        backbone="fake",
        head=PartSpec("pokevla_expert", {"width": 16, "layers": 1, "heads": 2, "queries": 4}),
        chunk_size=CHUNK,
        token_sources=[PartSpec("seg")],
        cameras=("base", "wrist"),
    )
    policy = build_policy(config, normalizer)
    batch = _batch(state=False)
    loss, _ = policy(batch)
    loss.backward()
    assert policy.head.seg and policy.token_sources[0].embed.grad.abs().sum() > 0
    assert policy.head.layers[0].seg_attn.kv.weight.grad.abs().sum() > 0
    assert policy.predict(batch).shape == (2, CHUNK, DIM)

"""OpenVLA-OFT parallel decoding: the placeholder block's mask on a real backbone, the
per-step MLP ResNet, the L1 loss, gradient flow and one-call prediction."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import BackboneOutput, ExtraTokens
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.heads import build_head
from vlaworks.models.heads.parallel_l1 import (
    PLACEHOLDER_BLOCK,
    PLACEHOLDER_GROUP,
    ParallelL1Head,
    ParallelL1Options,
    ResidualBlock,
    l1_chunk_loss,
)

CHUNK, DIM = 3, 7


def _batch(b: int = 2, t: int = CHUNK, mask: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (b, 1, 3, 32, 32), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "push the bowl to the left"][:b],
        actions=torch.rand(b, t, DIM, generator=g) * 2 - 1,
        action_mask=mask,
    )


@pytest.fixture(scope="module")
def prismatic():
    torch.manual_seed(0)
    return build_backbone("prismatic-tiny", image_size=32).eval()


def test_mlp_resnet_follows_oft() -> None:
    """LN(7h) -> Linear(7h, h) -> ReLU -> 2 x pre-LN residual blocks -> LN(h) -> Linear(h, 7)."""
    head = ParallelL1Head(16, CHUNK, DIM)
    layers = list(head.mlp.net)
    assert [type(m).__name__ for m in layers] == [
        "LayerNorm", "Linear", "ReLU", "ResidualBlock", "ResidualBlock", "LayerNorm", "Linear"
    ]
    assert (layers[1].in_features, layers[1].out_features) == (DIM * 16, 16)
    assert (layers[-1].in_features, layers[-1].out_features) == (16, DIM)
    block = layers[3]
    x = torch.randn(4, 16)
    torch.testing.assert_close(block(x), x + block.ffn(x))
    narrow = ParallelL1Head(16, CHUNK, DIM, ParallelL1Options(mlp_width=8, blocks=1))
    assert narrow.mlp.net[1].out_features == 8
    assert sum(isinstance(m, ResidualBlock) for m in narrow.mlp.net) == 1


def test_placeholders_are_one_bidirectional_block_of_zeros(fake_backbone) -> None:
    head = ParallelL1Head(32, CHUNK, DIM)
    (block,) = head.extra_tokens(_batch(), fake_backbone, training=True)
    assert block.name == PLACEHOLDER_BLOCK and block.embeds.shape == (2, CHUNK * DIM, 32)
    assert (block.attention, block.group) == ("bidirectional", PLACEHOLDER_GROUP)
    assert not block.embeds.any()


def test_mask_of_parallel_decoding_on_a_real_backbone(prismatic, monkeypatch) -> None:
    """The 4-D mask the LM receives: placeholders see each other and the prefix (a causal
    proprio-like token included), the prefix never sees them."""
    head = ParallelL1Head(prismatic.hidden_size, CHUNK, DIM)
    batch = _batch()
    state = ExtraTokens("state", embeds=torch.randn(2, 1, prismatic.hidden_size))
    seen = {}
    run_lm = prismatic.run_lm

    def spy(embeds, mask, *args):
        seen["mask"] = mask
        return run_lm(embeds, mask, *args)

    monkeypatch.setattr(prismatic, "run_lm", spy)
    with torch.no_grad():
        blocks = [state, *head.extra_tokens(batch, prismatic, training=False)]
        out = prismatic(batch.images, batch.instructions, blocks)
    allowed = seen["mask"][:, 0] == 0  # [B, L, L]
    ph = out.spans[PLACEHOLDER_BLOCK]
    n = ph.stop - ph.start
    assert n == CHUNK * DIM and ph.stop == allowed.shape[-1]
    real = out.attention_mask.bool()[:, : ph.start]  # the shorter instruction is left-padded
    assert not real[0].all() and real[1].all()
    assert allowed[:, ph, ph].all()
    torch.testing.assert_close(allowed[:, ph, : ph.start], real[:, None].expand(-1, n, -1))
    assert not allowed[:, : ph.start, ph].any()
    # real prefix queries keep the causal mask over real keys (padded rows are never read)
    pairs = real[:, :, None] & real[:, None, :]
    causal = torch.ones(ph.start, ph.start, dtype=torch.bool).tril()
    assert torch.equal(allowed[:, : ph.start, : ph.start] & pairs, causal & pairs)


def test_perturbing_one_placeholder_reaches_the_others_not_the_prefix(prismatic) -> None:
    head = ParallelL1Head(prismatic.hidden_size, CHUNK, DIM)
    batch = _batch(1)
    state = ExtraTokens("state", embeds=torch.randn(1, 1, prismatic.hidden_size))
    (block,) = head.extra_tokens(batch, prismatic, training=False)
    bumped = block.embeds.clone()
    bumped[:, 10] = torch.randn(prismatic.hidden_size, generator=torch.Generator().manual_seed(3))
    other = ExtraTokens(PLACEHOLDER_BLOCK, embeds=bumped, attention="bidirectional", group=PLACEHOLDER_GROUP)
    with torch.no_grad():
        a = prismatic(batch.images, batch.instructions, [state, block])
        b = prismatic(batch.images, batch.instructions, [state, other])
    ph = a.spans[PLACEHOLDER_BLOCK]
    torch.testing.assert_close(a.hidden[:, : ph.start], b.hidden[:, : ph.start], atol=1e-6, rtol=0)
    delta = (a.hidden[0, ph] - b.hidden[0, ph]).abs().amax(-1)
    assert (delta[:10] > 1e-4).all() and (delta[11:] > 1e-4).all()  # earlier ones too: bidirectional
    # the zero placeholders still differ from each other (positions tell them apart)
    assert (a.hidden[0, ph][1:] - a.hidden[0, ph][:-1]).abs().amax() > 1e-4


def test_decode_reads_each_steps_placeholders() -> None:
    """Placeholder ``t * 7 + d`` belongs to step ``t``: changing step 1's states changes only row 1."""
    torch.manual_seed(0)
    head = ParallelL1Head(8, CHUNK, DIM)
    hidden = torch.randn(1, 5 + CHUNK * DIM, 8)
    spans = {PLACEHOLDER_BLOCK: slice(5, 5 + CHUNK * DIM)}
    ref = head.decode(BackboneOutput(hidden, spans, torch.ones(1, hidden.shape[1])))
    hidden2 = hidden.clone()
    hidden2[:, 5 + DIM : 5 + 2 * DIM] += 1.0 + torch.randn(DIM, 8)
    hidden2[:, :5] += 3.0  # prefix states are not read
    got = head.decode(BackboneOutput(hidden2, spans, torch.ones(1, hidden.shape[1])))
    assert ref.shape == (1, CHUNK, DIM)
    torch.testing.assert_close(got[:, [0, 2]], ref[:, [0, 2]])
    assert not torch.allclose(got[:, 1], ref[:, 1])
    with pytest.raises(KeyError, match="pass this head's extra_tokens"):
        head.decode(BackboneOutput(hidden, {}, torch.ones(1, hidden.shape[1])))


def test_l1_loss_by_hand_and_padding_ignored() -> None:
    pred = torch.zeros(1, 2, DIM)
    target = torch.zeros(1, 2, DIM)
    target[0, 0] = torch.tensor([0.7, -0.7, 0.0, 0.0, 0.0, 0.0, 1.0])
    target[0, 1] = 50.0  # padding past the episode end
    loss, metrics = l1_chunk_loss(pred, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(2.4 / 7)
    assert metrics["l1_pose"] == pytest.approx(1.4 / 6)
    assert metrics["l1_gripper"] == pytest.approx(1.0)
    assert metrics["l1_translation"] == pytest.approx(1.4 / 3) and metrics["l1_rotation"] == 0.0
    assert metrics["gripper_acc"] == 0.0  # predicted 0 (open side) against a closed target


def test_loss_and_gradient_flow_through_a_real_backbone(prismatic) -> None:
    head = ParallelL1Head(prismatic.hidden_size, CHUNK, DIM)
    batch = _batch(mask=torch.tensor([[True, True, True], [True, True, False]]))
    prismatic.zero_grad(set_to_none=True)
    out = prismatic(batch.images, batch.instructions, head.extra_tokens(batch, prismatic, training=True))
    loss, metrics = head.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["l1"] == pytest.approx(loss.item())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.mlp.net[1].parameters())
    assert prismatic.llm.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prismatic.featurizer.parameters())
    prismatic.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="chunk size"):
        head.loss(out, _batch(t=CHUNK + 1))


def test_predict_is_one_backbone_call_with_a_binary_gripper(prismatic, monkeypatch) -> None:
    head = ParallelL1Head(prismatic.hidden_size, CHUNK, DIM).eval()
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
    torch.testing.assert_close(chunk[..., :-1], head.decode(out)[..., :-1])


def test_registry_builds_and_checks_options(fake_backbone) -> None:
    config = PolicyConfig(
        backbone="fake", head=PartSpec("parallel_l1", {"blocks": 1}), chunk_size=4, action_dim=DIM
    )
    head = build_head(config.head, fake_backbone, config)
    assert isinstance(head, ParallelL1Head) and (head.chunk, head.action_dim) == (4, DIM)
    assert head.mlp.net[1].in_features == DIM * fake_backbone.hidden_size
    with pytest.raises(ValueError, match="did you mean 'mlp_width'"):
        PolicyConfig(backbone="fake", head=PartSpec("parallel_l1", {"mlp_widht": 8}), chunk_size=4)
    with pytest.raises(ValueError, match="blocks must be >= 0"):
        ParallelL1Options(blocks=-1)

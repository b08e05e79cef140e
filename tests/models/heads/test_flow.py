"""π0's flow-matching action expert: time sampling and embedding, the block-causal mask,
the flow loss, and Euler sampling recovering a known (constant) chunk."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.heads.flow import FlowMatchingHead, FlowOptions, sample_time, time_embedding
from vlaworks.models.policy import build_policy

pytestmark = pytest.mark.usefixtures("fake_backbones")
CHUNK = 4


def config(**overrides) -> PolicyConfig:
    base = dict(
        backbone="fake",
        backbone_options={"hidden": 32},
        head=PartSpec("flow", {"width": 32, "layers": 2, "heads": 2, "num_steps": 10}),
        chunk_size=CHUNK,
        image_size=16,
    )
    base.update(overrides)
    return PolicyConfig(**base)


def batch(actions: torch.Tensor, state: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    b = actions.shape[0]
    return Batch(
        images=torch.randint(0, 256, (b, 1, 3, 16, 16), dtype=torch.uint8, generator=g),
        instructions=["pick up the cube"] * b,
        state=state,
        actions=actions,
    )


def test_time_sampling_and_embedding() -> None:
    torch.manual_seed(0)
    t = sample_time(4096, torch.device("cpu"))
    assert float(t.min()) >= 0.001 and float(t.max()) <= 1.0
    assert float(t.mean()) == pytest.approx(1.5 / 2.5 * 0.999 + 0.001, abs=0.02)  # Beta(1.5, 1) mean
    emb = time_embedding(torch.tensor([0.0, 0.5]), 8)
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_block_causal_mask_hides_actions_from_the_state_and_padding_from_all() -> None:
    head = FlowMatchingHead(32, chunk=3, state_dim=2, options=FlowOptions(width=16, layers=1, heads=2))
    prefix = torch.tensor([[0, 1, 1], [1, 1, 1]], dtype=torch.bool)  # row 0 is left-padded
    mask = head.mask(prefix, has_state=True)
    assert mask.shape == (2, 1, 4, 7)
    seen = mask[:, 0] == 0
    assert not seen[0, :, 0].any() and seen[1, :, 0].all()  # padding is never attended
    assert seen[0, 0].tolist() == [False, True, True, True, False, False, False]  # state: prefix + itself
    assert seen[0, 1:, 3:].all()  # actions see the state and every action


def test_loss_trains_the_expert_and_reads_the_state(normalizer) -> None:
    policy = build_policy(config(use_state=True, state_dim=8), normalizer)
    assert policy.head.needs_hidden_states and policy.head.state_in is not None
    torch.manual_seed(0)
    b = batch(torch.rand(2, CHUNK, 7) * 2 - 1, state=torch.randn(2, 8))
    loss, metrics = policy(b)
    loss.backward()
    assert metrics["flow_mse"] == pytest.approx(loss.item())
    assert policy.head.state_in.weight.grad.abs().sum() > 0
    assert policy.backbone.block.q_proj.weight.grad.abs().sum() > 0  # the VLM trains through the expert
    assert policy.predict(b).shape == (2, CHUNK, 7)
    with pytest.raises(ValueError, match="state"):
        policy.predict(batch(torch.zeros(1, CHUNK, 7)))


def test_euler_sampling_recovers_a_constant_target_chunk(one_thread) -> None:
    """With one target chunk for every input the learned field is (x - c) / t, which Euler
    integration follows exactly from noise at t = 1 to c at t = 0."""
    torch.manual_seed(0)
    policy = build_policy(config())
    target = torch.linspace(-0.8, 0.8, CHUNK * 7).view(1, CHUNK, 7)
    train_batch = batch(target.expand(32, -1, -1).clone())
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(600):
        loss, _ = policy(train_batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    predicted = policy.predict(batch(torch.zeros(8, CHUNK, 7)))
    error = (predicted - target).abs()  # from noise with mean |x - c| ~ 0.9
    assert error.mean() < 0.05 and error.max() < 0.15


def test_flow_options_are_typed() -> None:
    with pytest.raises(ValueError, match="did you mean 'num_steps'"):
        config(head=PartSpec("flow", {"num_step": 5}))
    with pytest.raises(ValueError, match="even size"):
        build_policy(config(head=PartSpec("flow", {"width": 30, "heads": 2})))

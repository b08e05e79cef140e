"""VLAPolicy on vision-language batches: answer-span text loss, greedy cached answers, prepare()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.lm_text import text_answer_ids
from vlaworks.models.policy import VL_ANSWER_BLOCK, build_policy

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def policy_with(head: PartSpec, backbone: str = "prismatic-tiny"):
    torch.manual_seed(0)
    config = PolicyConfig(
        backbone=backbone, head=head, chunk_size=2, image_size=SIZE, backbone_options={"image_size": SIZE}
    )
    return build_policy(config)


def vl_batch(prompts: list[str], answers: list[str]) -> Batch:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (len(prompts), 1, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    return Batch(images=images, instructions=list(prompts), vl_prompt=list(prompts), vl_answer=list(answers))


def rows(batch: Batch, i: int) -> Batch:
    """Row ``i`` of a VL batch on its own."""
    return Batch(
        images=batch.images[i : i + 1],
        instructions=[batch.instructions[i]],
        vl_prompt=[batch.vl_prompt[i]],
        vl_answer=[batch.vl_answer[i]],
    )


def test_text_loss_is_the_answer_token_mean_and_ignores_padding() -> None:
    policy = policy_with(PartSpec("token", {"tokenizer": "string"})).eval()
    batch = vl_batch(["Point to the red cube.", "How many cubes?"], ["(0.25, 0.50)", "2"])
    loss, metrics = policy(batch)
    assert metrics["vl_ce"] == pytest.approx(loss.item()) and 0.0 <= metrics["vl_token_acc"] <= 1.0
    ids, keep = text_answer_ids(policy.backbone, batch.vl_answer)
    counts = keep.sum(1).tolist()
    assert counts[0] > counts[1] > 1  # padded second row: answer + EOS only count
    singles = [policy(rows(batch, i))[0].item() for i in range(2)]
    expected = (singles[0] * counts[0] + singles[1] * counts[1]) / sum(counts)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_text_loss_matches_next_token_cross_entropy() -> None:
    policy = policy_with(PartSpec("token", {"tokenizer": "bins"})).eval()
    batch = vl_batch(["Where is the bowl?"], ["left"])
    ids, _ = text_answer_ids(policy.backbone, batch.vl_answer)
    out = policy.backbone(batch.images, batch.vl_prompt, [ExtraTokens(VL_ANSWER_BLOCK, ids=ids)])
    logits = policy.backbone.lm_logits(out.hidden[0, -ids.shape[1] - 1 : -1]).float()
    assert policy(batch)[0].item() == pytest.approx(F.cross_entropy(logits, ids[0]).item(), rel=1e-5)


def test_vl_batches_train_the_lm_even_with_a_continuous_head() -> None:
    policy = policy_with(PartSpec("query_mlp", {"mlp_width": 32}))
    loss, _ = policy(vl_batch(["What colour is the cube?"], ["red"]))
    loss.backward()
    assert policy.backbone.input_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in policy.head.parameters())


def test_answer_decodes_greedily_with_the_cache() -> None:
    policy = policy_with(PartSpec("token", {"tokenizer": "string"})).eval()
    batch = vl_batch(["Point to the cube.", "Count the cubes please."], ["a", "b"])
    texts = policy.answer(batch, max_new_tokens=4)
    eos = policy.backbone.tokenizer.eos_token_id
    fed = torch.empty((2, 0), dtype=torch.long)
    for _ in range(4):  # reference: re-run the full sequence every step, no cache
        blocks = [ExtraTokens(VL_ANSWER_BLOCK, ids=fed)] if fed.shape[1] else []
        hidden = policy.backbone(batch.images, batch.vl_prompt, blocks).hidden[:, -1]
        fed = torch.cat([fed, policy.backbone.lm_logits(hidden).argmax(-1, keepdim=True)], dim=1)
    expected = []
    for row in fed.tolist():
        row = row[: row.index(eos)] if eos in row else row
        expected.append(policy.backbone.tokenizer.decode(row, skip_special_tokens=True))
    assert texts == expected


def test_a_few_steps_teach_an_answer() -> None:
    policy = policy_with(PartSpec("token", {"tokenizer": "string"}))
    answer = "(0.25, 0.50)"
    assert policy.backbone.tokenizer.decode(
        policy.backbone.tokenizer(answer, add_special_tokens=False).input_ids
    ) == answer
    batch = vl_batch(["Point to the red cube."], [answer])
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(80):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert policy.eval().answer(batch, max_new_tokens=16) == [answer]


def test_batches_without_actions_or_answers_are_rejected() -> None:
    policy = policy_with(PartSpec("query_mlp", {"mlp_width": 32}))
    plain = Batch(images=torch.zeros((1, 1, 3, SIZE, SIZE), dtype=torch.uint8), instructions=["go"])
    with pytest.raises(ValueError, match="vl_prompt and vl_answer"):
        policy(plain)
    with pytest.raises(ValueError, match="max_new_tokens"):
        policy.answer(plain, max_new_tokens=0)


def test_prepare_fits_only_fast_heads() -> None:
    assert not policy_with(PartSpec("token", {"tokenizer": "bins"})).prepare(np.zeros((4, 2, 7)))
    fast = policy_with(PartSpec("token", {"tokenizer": "fast"}))
    with pytest.raises(ValueError, match=r"\[N, 2, 7\]"):
        fast.prepare(np.zeros((4, 3, 7)))
    chunks = np.random.default_rng(0).uniform(-1, 1, (32, 2, 7)).astype(np.float32)
    assert fast.prepare(chunks)
    robot = Batch(
        images=torch.zeros((2, 1, 3, SIZE, SIZE), dtype=torch.uint8),
        instructions=["go", "stop"],
        actions=torch.from_numpy(chunks[:2]),
    )
    assert torch.isfinite(fast(robot)[0])
    assert fast.eval().predict(robot).shape == (2, 2, 7)

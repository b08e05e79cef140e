"""The miniature budget (the demo's measured defaults) and the seed streams kept apart."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vlaworks.demo import DemoConfig
from vlaworks.miniature import (
    EXPERT_NOISE_STREAM,
    GENERATE_SEED_OFFSET,
    GENERATE_SUITE_STRIDE,
    MINIATURE,
    MINIATURE_PRETRAIN,
    PERTURB_STREAM,
    PROBE_SCENE_STREAM,
    VL_SCENE_STREAM,
    VQA_HELD_OUT_SEED,
    eval_seed,
    generation_seed,
    pretrain_vl_seed,
    probe_seeds,
)
from vlaworks.sim.perturb import FAMILIES
from vlaworks.sim.tasks import SUITES
from vlaworks.train.config import default_mixed_precision


def test_the_demo_trains_and_evaluates_with_its_measured_budget():
    """BENCHMARKS.md's demo row: changing any of these numbers changes the demo's result."""
    cfg = DemoConfig()
    assert (cfg.recipe, cfg.suite, cfg.layout, cfg.episodes, cfg.workers, cfg.seed) == (
        "vlm4vla+proprio",
        "spatial",
        "fixed",
        120,
        2,
        0,
    )
    assert cfg.budget == MINIATURE
    assert MINIATURE.policy_overrides() == {
        "policy.cameras": ["base", "wrist"],
        "policy.image_size": 64,
        "policy.backbone_options.image_size": 64,
        "policy.backbone_options.patch_size": 8,
        "policy.chunk_size": 8,
        "policy.augment.shift": 4,
        "policy.backbone_options.token_merge": 2,
        "policy.backbone_options.attn_implementation": "eager",
    }
    assert MINIATURE.train_overrides(0) == {
        "steps": 6000,
        "batch_size": 32,
        "lr": 5e-4,
        "warmup_steps": 200,
        "weight_decay": 0.01,
        "save_every": 1200,
        "seed": 0,
        "mixed_precision": default_mixed_precision(),
    }
    assert (MINIATURE.backbone, MINIATURE.eval_episodes, MINIATURE.chunk_exec, MINIATURE.envs_per_worker) == (
        "prismatic-tiny",
        10,
        "ensemble",
        5,
    )
    assert eval_seed(cfg.seed) == 10_000


def test_budget_overrides_follow_the_budget():
    small = replace(
        MINIATURE, token_merge=1, attn_implementation=None, steps=40, checkpoints=4, mixed_precision="no"
    )
    overrides = small.policy_overrides()
    assert "policy.backbone_options.token_merge" not in overrides
    assert "policy.backbone_options.attn_implementation" not in overrides
    train = small.train_overrides(3, log_every=1)
    assert (train["warmup_steps"], train["save_every"], train["seed"]) == (4, 10, 3)
    assert train["mixed_precision"] == "no" and train["log_every"] == 1
    assert MINIATURE_PRETRAIN.cameras == ("base",) and MINIATURE_PRETRAIN.steps == 2000
    # the backbone settings go only to the families that have them
    hf = MINIATURE.policy_overrides("qwen2.5-vl-tiny")
    assert "policy.backbone_options.token_merge" not in hf and hf["policy.backbone_options.patch_size"] == 8
    assert not any(k.startswith("policy.backbone_options.") for k in MINIATURE.policy_overrides("cnn"))
    with pytest.raises(ValueError, match="mixed_precision must be one of auto, no, bf16, fp16; got 'fp8'"):
        replace(MINIATURE, mixed_precision="fp8")


def test_stream_keys_are_distinct():
    keys = [EXPERT_NOISE_STREAM, VL_SCENE_STREAM, PROBE_SCENE_STREAM] + [
        PERTURB_STREAM + i for i in range(len(FAMILIES))
    ]
    assert len(set(keys)) == len(keys)


def test_seed_offsets_keep_roles_apart():
    small = range(1000)  # the seeds users pass
    # demonstrations: one block per seed, one stride per suite, above every small seed
    assert len(SUITES) * GENERATE_SUITE_STRIDE <= GENERATE_SEED_OFFSET
    firsts = {generation_seed(s, i, 0) for s in range(3) for i in range(len(SUITES))}
    lasts = {generation_seed(s, i, GENERATE_SUITE_STRIDE - 1) for s in range(3) for i in range(len(SUITES))}
    assert len(firsts) == 3 * len(SUITES) and not firsts & lasts and min(firsts) > max(small)
    # evaluation bases never equal a run's own seed
    assert not {eval_seed(s) for s in small} & set(small)
    # VL scenes: pretraining, co-training (small vl_seed) and held-out VQA seeds never meet
    pretrain = {pretrain_vl_seed(s) for s in small}
    assert not pretrain & set(small) and VQA_HELD_OUT_SEED not in pretrain | set(small)
    # probe scenes: training and test seeds disjoint across every seed
    train, test = zip(*(probe_seeds(s) for s in small), strict=True)
    assert not set(train) & set(test)

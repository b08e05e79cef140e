"""PixelVLA (seed 000): Table 4 rows as staged recipes, CAT / PUE freezing, and an annotated
dataset trained 2 steps per stage end to end (resumed exactly after a kill, prompted inference)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlaworks.data.annotations import EpisodeAnnotation, write_annotations
from vlaworks.data.lerobot import DatasetWriter
from vlaworks.data.normalize import Normalizer
from vlaworks.models.checkpoint import load_policy, save_policy
from vlaworks.prompts import CameraPrompt
from vlaworks.recipes import get_recipe, recipe_names
from vlaworks.train.pipeline import build_recipe, train_policy
from vlaworks.train.stages import build_stage_policy

SIZE = 32
TINY = {
    "policy.image_size": SIZE,
    "policy.backbone_options.image_size": SIZE,
    "policy.backbone_options.patch_size": 8,
}
TRAIN = {"steps": 2, "batch_size": 2, "save_every": 1, "keep_last": 3, "log_every": 1, "progress": False}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table4_rows_are_stage_lists() -> None:
    stages = {
        name: [s.name for s in get_recipe(name).stages] for name in recipe_names() if "pixelvla" in name
    }
    assert stages == {
        "pixelvla-baseline": ["vla"],
        "pixelvla+ft": ["vla", "ft"],
        "pixelvla+ft+cat": ["vla", "cat"],
        "pixelvla+ft+pue": ["vla", "pue"],
        "pixelvla": ["vla", "cat", "pue"],
        "pixelvla-pi0": ["pi0", "pue"],
    }
    recipe = get_recipe("pixelvla")
    vla, cat, pue = (recipe.stage_recipe(s) for s in recipe.stages)
    assert vla.policy.head.options == {"tokenizer": "bins", "n_bins": 256} and not vla.policy.token_sources
    assert (
        cat.policy.head.type == "resnet_decoder"
        and cat.policy.freeze_backbone
        and not cat.policy.token_sources
    )
    assert [s.type for s in pue.policy.token_sources] == ["pixel_aware", "visual_prompt"]
    assert pue.policy.lora.enabled and pue.policy.lora.r == 32 and pue.policy.freeze_vision
    assert (pue.policy.chunk_size, pue.policy.image_size, pue.policy.cameras) == (8, 224, ("base",))
    assert (cat.train, pue.train) == (
        {"batch_size": 32, "lr": 5e-4, "steps": 100_000},
        {"batch_size": 32, "lr": 1e-3, "steps": 200_000, "find_unused_parameters": True},
    )
    changed = recipe.override({"stages.cat.train.lr": 1e-4, "stages.pue.policy.lora.r": 8})
    assert changed.stage_recipe(changed.stages[1]).train["lr"] == 1e-4
    assert changed.stage_recipe(changed.stages[2]).policy.lora.r == 8
    with pytest.raises(KeyError, match="stages.<stage>.policy"):
        recipe.override({"stages.pu.train.lr": 1.0})


def _normalizer() -> Normalizer:
    stat = {"min": [-1.0] * 7, "max": [1.0] * 7, "q01": [-1.0] * 7, "q99": [1.0] * 7}
    return Normalizer({"action": stat}, mode="q99", keys=("action",))


def _trainable(policy) -> set[str]:
    return {name for name, p in policy.named_parameters() if p.requires_grad}


def test_cat_trains_only_the_decoder_and_pue_the_encoders_decoder_and_lora(tmp_path: Path) -> None:
    recipe = build_recipe("pixelvla", overrides=TINY)
    vla, cat, pue = (recipe.stage_recipe(s).policy for s in recipe.stages)
    torch.manual_seed(0)
    first, _ = build_stage_policy(vla, _normalizer(), None)
    save_policy(first, tmp_path / "vla")
    after_vla, report = build_stage_policy(cat, _normalizer(), tmp_path / "vla")
    assert report["fresh"] == ["head"]  # the continuous decoder is new; the VLA carries over
    assert _trainable(after_vla) and all(n.startswith("head.") for n in _trainable(after_vla))
    assert not after_vla.token_sources
    save_policy(after_vla, tmp_path / "cat")
    final, report = build_stage_policy(pue, _normalizer(), tmp_path / "cat")
    assert report["fresh"] == ["token_sources.0", "token_sources.1"]
    trained = _trainable(final)
    backbone = {n for n in trained if n.startswith("backbone.")}
    assert backbone and all("lora_" in n for n in backbone)  # LoRA only, in the LM
    assert not any(n.startswith(("backbone.featurizer", "backbone.projector")) for n in backbone)
    assert any(n.startswith("token_sources.0.") for n in trained)  # pixel-aware encoder
    assert any(n.startswith("token_sources.1.") for n in trained)  # visual prompt encoder
    assert any(n.startswith("head.") for n in trained)
    lora_a = next(p for n, p in final.named_parameters() if n.endswith("lora_A.default.weight"))
    assert lora_a.shape[0] == 32
    cat_state = after_vla.state_dict()
    for name, value in final.state_dict().items():  # PUE starts from CAT's weights (LoRA base layers too)
        source = name.replace(".base_layer", "")
        if source in cat_state and not name.startswith("token_sources"):
            assert torch.equal(value, cat_state[source]), name


def _annotated_dataset(root: Path, seed: int = 0) -> Path:
    features = {
        "observation.images.base": {"dtype": "image", "shape": [SIZE, SIZE, 3]},
        "action": {"dtype": "float32", "shape": [7]},
    }
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, fps=10, features=features) as writer:
        for _ in range(2):
            for _ in range(6):
                writer.add_frame(
                    {
                        "observation.images.base": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
                        "action": rng.uniform(-1, 1, 7).astype(np.float32),
                        "task": "pick up the cube",
                    }
                )
            writer.save_episode()
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:16, 4:20] = 1
    write_annotations(
        root,
        [
            EpisodeAnnotation(
                episode_index=0,
                valid=True,
                backend="oracle",
                camera="base",
                key_frame=2,
                phrase="cube",
                mask=mask,
                box=(4 / 32, 8 / 32, 20 / 32, 16 / 32),
                line=((0.2, 0.4), (0.55, 0.4)),
                points=((0.3, 0.4), (0.5, 0.4)),
            ),
            EpisodeAnnotation(
                episode_index=1,
                valid=False,
                backend="oracle",
                camera="base",
                key_frame=-1,
                phrase="cube",
                mask=np.zeros_like(mask),
                reason="the gripper never closes",
            ),
        ],
    )
    return root


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_pixelvla_trains_two_steps_per_stage_and_resumes_exactly(tmp_path: Path) -> None:
    data = _annotated_dataset(tmp_path / "data")
    out = tmp_path / "run"
    recipe = build_recipe("pixelvla", overrides=TINY)
    run = train_policy(recipe, data, out, train_overrides=TRAIN)
    stages = out / "stages"
    assert sorted(p.name for p in stages.iterdir()) == ["0-vla", "1-cat", "2-pue"]
    for folder in stages.iterdir():
        rows = (folder / "metrics.csv").read_text().splitlines()[1:]
        assert len(rows) == 2 and (folder / "policy" / "model.safetensors").is_file()
    assert json.loads((stages / "2-pue" / "init.json").read_text())["fresh"] == [
        "token_sources.0",
        "token_sources.1",
    ]
    assert run.recipe.name == "pixelvla" and len(run.result.losses) == 2
    vla, cat, pue = (_weights(stages / s / "policy") for s in ("0-vla", "1-cat", "2-pue"))
    backbone = [k for k in vla if k.startswith("backbone.")]
    assert all(torch.equal(vla[k], cat[k]) for k in backbone)  # CAT trained nothing but the decoder
    assert any(not torch.equal(cat[k], pue[k]) for k in cat if k.startswith("head."))
    vision = [k for k in cat if k.startswith("backbone.featurizer")]
    assert vision and all(torch.equal(cat[k], pue[k]) for k in vision)  # PUE keeps vision frozen

    final = _weights(out / "policy")
    assert final.keys() == pue.keys() and all(torch.equal(final[k], pue[k]) for k in final)
    policy = load_policy(out)
    image = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    obs = {"images": {"base": image}, "instruction": "pick up the cube"}
    target = np.zeros((48, 48), bool)
    target[10:20, 5:25] = True
    chunks = {
        "text": policy.predict_chunk([obs]),
        "point": policy.predict_chunk(
            [obs | {"visual_prompts": [CameraPrompt("point", "base", ((0.3, 0.3),))]}]
        ),
        "text+mask": policy.predict_chunk([obs | {"pixel_masks": {"base": target}}]),
    }
    assert all(c.shape == (1, 8, 7) and np.isfinite(c).all() for c in chunks.values())
    assert not np.array_equal(chunks["text"], chunks["point"]) and not np.array_equal(
        chunks["text"], chunks["text+mask"]
    )

    # killed during PUE after its first step: the rerun skips vla and cat and resumes PUE exactly
    shutil.rmtree(out / "policy")
    pue_dir = stages / "2-pue"
    shutil.rmtree(pue_dir / "policy")
    shutil.rmtree(pue_dir / "checkpoints" / "step-000002")
    (pue_dir / "checkpoints" / "latest").unlink()
    cat_before = (stages / "1-cat" / "metrics.csv").read_text()
    again = train_policy(build_recipe("pixelvla", overrides=TINY), data, out, train_overrides=TRAIN)
    assert again.result.start_step == 1 and len(again.result.losses) == 1
    assert again.result.losses[0] == run.result.losses[1]
    resumed = _weights(out / "policy")
    assert all(torch.equal(resumed[k], final[k]) for k in final)
    assert (stages / "1-cat" / "metrics.csv").read_text() == cat_before  # not trained again


def test_a_row_reuses_the_shared_first_stage_of_another_row(tmp_path: Path) -> None:
    data = _annotated_dataset(tmp_path / "data")
    base = train_policy(build_recipe("pixelvla-baseline", overrides=TINY), data, tmp_path / "base",
                        train_overrides=TRAIN)
    vla = tmp_path / "base" / "stages" / "0-vla"
    # a cat row with the same vla stage copies it (no checkpoints, marked) and trains cat only
    cat = train_policy(build_recipe("pixelvla+ft+cat", overrides=TINY), data, tmp_path / "cat",
                       train_overrides={**TRAIN, "log_every": 2}, reuse=tmp_path / "base")
    copied = tmp_path / "cat" / "stages" / "0-vla"
    assert cat.reused == ["vla"] and not (copied / "checkpoints").exists()
    assert json.loads((copied / "reused.json").read_text())["from"] == str(vla.resolve())
    assert (copied / "metrics.csv").read_text() == (vla / "metrics.csv").read_text()
    assert json.loads((tmp_path / "cat" / "stages" / "1-cat" / "init.json").read_text())["from"] == str(
        copied / "policy"
    )
    mine, theirs = _weights(copied / "policy"), _weights(base.policy_dir)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # another learning rate would train another vla stage: refused, naming the difference
    with pytest.raises(ValueError, match=r"train\.lr \(2e-05 there, 0\.001 here\)"):
        train_policy(build_recipe("pixelvla+ft+cat", overrides=TINY), data, tmp_path / "lr",
                     train_overrides={**TRAIN, "lr": 1e-3}, reuse=tmp_path / "base")
    assert not (tmp_path / "lr").exists()  # refused before anything is written
    other = _annotated_dataset(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="another dataset"):
        train_policy(build_recipe("pixelvla+ft+cat", overrides=TINY), other, tmp_path / "o",
                     train_overrides=TRAIN, reuse=tmp_path / "base")


def test_pixelvla_pi0_puts_the_encoders_before_the_flow_expert(tmp_path: Path) -> None:
    recipe = build_recipe(
        "pixelvla-pi0",
        overrides={**TINY, "policy.chunk_size": 4, "policy.cameras": ["base"]},
    )
    first, pue = (recipe.stage_recipe(s).policy for s in recipe.stages)
    assert first.head.type == pue.head.type == "flow" and first.use_state and not first.token_sources
    torch.manual_seed(0)
    stat = {"q01": [-1.0] * 8, "q99": [1.0] * 8, "min": [-1.0] * 8, "max": [1.0] * 8}
    normalizer = Normalizer({"action": {k: v[:7] for k, v in stat.items()}, "observation.state": stat})
    pi0, _ = build_stage_policy(replace(first, state_dim=8), normalizer, None)
    save_policy(pi0, tmp_path / "pi0")
    policy, report = build_stage_policy(replace(pue, state_dim=8), normalizer, tmp_path / "pi0")
    assert report["fresh"] == ["token_sources.0", "token_sources.1"]
    mask = np.zeros((SIZE, SIZE), bool)
    mask[4:12, 4:12] = True
    obs = {
        "images": {"base": np.zeros((SIZE, SIZE, 3), np.uint8)},
        "state": np.zeros(8, np.float32),
        "instruction": "pick up the cube",
        "visual_prompts": [CameraPrompt("mask", "base", mask=mask)],
    }
    batch = policy.processor.batch([obs])
    batch.actions = torch.zeros(1, 4, 7)
    batch.action_mask = torch.ones(1, 4, dtype=torch.bool)
    loss, _ = policy(batch)
    loss.backward()
    assert policy.token_sources[1].mask_conv[0].weight.grad.abs().sum() > 0

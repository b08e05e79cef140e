"""VL pretraining: its settings' cache key, the cache's reuse, and the backbone folder recipes start from."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
import torch

from vlaworks.miniature import MINIATURE
from vlaworks.models.backbones import build_backbone
from vlaworks.models.policy import build_policy
from vlaworks.train import pretrain as pretrain_module
from vlaworks.train.pipeline import build_recipe
from vlaworks.train.pretrain import (
    ALIGN_DIR,
    GROUNDING_FILE,
    SETTINGS_FILE,
    VLM_DIR,
    PretrainSettings,
    freeze_language_model,
    pretrain_vlm,
    pretrained_vlm,
    read_grounding,
    resolve_vlm,
)

#: a different value for every setting
CHANGED = {
    "backbone": "qwen2.5-vl-tiny", "cameras": ("base", "wrist"), "image_size": 32, "patch_size": 4,
    "token_merge": 1, "attn_implementation": "sdpa", "samples": 999, "steps": 7, "batch_size": 3,
    "lr": 1e-3, "mixed_precision": "fp16", "mix": {"grounding": 1.0}, "batching": "mixed", "align_steps": 5,
    "seed": 1,
}


def test_the_key_changes_with_every_setting():
    base = PretrainSettings()
    assert set(CHANGED) == {f.name for f in fields(PretrainSettings)}
    keys = {base.key()}
    for name, value in CHANGED.items():
        changed = replace(base, **{name: value})
        assert getattr(changed, name) != getattr(base, name), name
        keys.add(changed.key())
    assert len(keys) == len(CHANGED) + 1
    assert PretrainSettings().key() == base.key()  # and is stable
    # proportional weights draw the same samples: the same key
    doubled = {"general": 2, "grounding": 2, "affordance": 2, "reasoning": 2}
    assert replace(base, mix=doubled).key() == base.key()


def test_no_alignment_stage_keeps_the_keys_made_before_it_existed():
    assert "align_steps" not in PretrainSettings().to_dict()
    assert PretrainSettings(align_steps=5).to_dict()["align_steps"] == 5


def test_settings_are_checked():
    with pytest.raises(ValueError, match="at least one batch"):
        PretrainSettings(samples=2, batch_size=4)
    with pytest.raises(ValueError, match="Unknown VL categories"):
        PretrainSettings(mix={"vision": 1.0})
    with pytest.raises(ValueError, match="batching"):
        PretrainSettings(batching="random")
    with pytest.raises(ValueError, match="align_steps"):
        PretrainSettings(align_steps=-1)


def test_the_budget_gives_the_architecture():
    settings = PretrainSettings.for_budget(MINIATURE, steps=5)
    assert (settings.image_size, settings.patch_size, settings.token_merge) == (
        MINIATURE.image_size, MINIATURE.patch_size, MINIATURE.token_merge
    )
    assert settings.steps == 5 and settings.budget.steps == 5
    assert settings.budget.vl_samples == settings.samples


def test_the_cache_pretrains_once_and_reuses(tmp_path, monkeypatch):
    calls = []

    def fake_pretrain(out, settings, *, resume, grounding):
        calls.append(settings.key())
        (out / VLM_DIR).mkdir(parents=True)
        (out / "checkpoints").mkdir()
        (out / "vl_pretrain.npz").write_bytes(b"x")
        (out / SETTINGS_FILE).write_text(json.dumps(settings.to_dict()))
        return out / VLM_DIR

    monkeypatch.setattr(pretrain_module, "pretrain_vlm", fake_pretrain)
    settings = PretrainSettings(steps=3)
    first = pretrained_vlm(settings, root=tmp_path)
    again = pretrained_vlm(PretrainSettings(steps=3), root=tmp_path)
    assert first == again == tmp_path / settings.key() / VLM_DIR and calls == [settings.key()]
    entry = first.parent
    assert not (entry / "checkpoints").exists() and not (entry / "vl_pretrain.npz").exists()
    assert not (tmp_path / f"{settings.key()}.partial").exists()  # renamed into place when complete
    other = pretrained_vlm(replace(settings, lr=1e-3), root=tmp_path)
    assert other != first and len(calls) == 2
    monkeypatch.setenv(pretrain_module.CACHE_ENV, str(tmp_path))
    assert resolve_vlm("pretrained", replace(MINIATURE, backbone="prismatic-tiny")) == str(
        tmp_path / PretrainSettings.for_budget(MINIATURE).key() / VLM_DIR
    )
    assert resolve_vlm("random", MINIATURE) == MINIATURE.backbone
    with pytest.raises(ValueError, match="--vlm must be one of"):
        resolve_vlm("imagenet", MINIATURE)
    with pytest.raises(ValueError, match="registry backbone name"):
        pretrained_vlm(PretrainSettings(backbone=str(tmp_path)), root=tmp_path)


@pytest.mark.slow
def test_pretrained_backbone_is_what_recipes_start_from(tmp_path, one_thread):
    settings = PretrainSettings(samples=8, steps=3, batch_size=4, image_size=32, patch_size=16, token_merge=1)
    folder = pretrain_vlm(tmp_path / "pre", settings, grounding=5)
    assert (tmp_path / "pre" / "metrics.csv").exists() and (tmp_path / "pre" / "vl_pretrain.npz").exists()
    assert json.loads((tmp_path / "pre" / SETTINGS_FILE).read_text())["steps"] == 3
    grounding = read_grounding(folder)
    assert set(grounding) == {"before", "after"} and (tmp_path / "pre" / GROUNDING_FILE).exists()
    assert sum(n for _, n in grounding["after"].values()) == 5
    fresh = build_backbone("prismatic-tiny", image_size=32, patch_size=16)
    loaded = build_backbone(str(folder))
    trained = loaded.state_dict()
    # pretraining moved the LM (a fresh random init is different, the saved one reloads exactly)
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    recipe = build_recipe("openvla+D", backbone=str(folder), overrides={
        "policy.image_size": 32, "policy.backbone_options.image_size": 32,
    })
    policy = build_policy(recipe.policy)
    lm_key = next(k for k in trained if k.startswith("llm.") and k.endswith("embed_tokens.weight"))
    assert torch.equal(policy.backbone.state_dict()[lm_key], trained[lm_key])


def test_the_alignment_stage_freezes_exactly_the_language_model():
    backbone = build_backbone("prismatic-tiny", image_size=32, patch_size=16)
    freeze_language_model(backbone)
    frozen = {name.split(".")[0] for name, p in backbone.named_parameters() if not p.requires_grad}
    trained = {name.split(".")[0] for name, p in backbone.named_parameters() if p.requires_grad}
    assert frozen == {"llm"} and trained == {"featurizer", "projector"}


@pytest.mark.parametrize("name", ["paligemma-tiny", "qwen2.5-vl-tiny"])
def test_an_hf_family_aligns_its_vision_tower_and_connector(name):
    backbone = build_backbone(name)
    freeze_language_model(backbone)
    vision = {id(p) for module in backbone.vision_modules() for p in module.parameters()}
    trained = [p for p in backbone.parameters() if p.requires_grad]
    assert trained and all(id(p) in vision for p in trained)
    assert not backbone.input_embeddings().weight.requires_grad


@pytest.mark.slow
def test_alignment_stage_trains_the_vision_side_then_everything(tmp_path, one_thread, monkeypatch):
    from vlaworks.train import trainer

    calls = []
    real_train = trainer.train

    def recording_train(policy, source, collate, cfg, **kwargs):
        backbone = policy.backbone
        before = {k: v.clone() for k, v in backbone.state_dict().items()}
        trainable = {k.split(".")[0] for k, p in backbone.named_parameters() if p.requires_grad}
        result = real_train(policy, source, collate, cfg, **kwargs)
        moved = {k.split(".")[0] for k, v in backbone.state_dict().items() if not torch.equal(v, before[k])}
        calls.append((cfg.out_dir, cfg.steps, trainable, moved))
        return result

    monkeypatch.setattr(trainer, "train", recording_train)
    settings = PretrainSettings(
        samples=8, steps=2, align_steps=3, batch_size=4, image_size=32, patch_size=16, token_merge=1
    )
    pretrain_vlm(tmp_path / "pre", settings, grounding=0)
    (align_dir, align_steps, align_trainable, align_moved), (joint_dir, steps, trainable, moved) = calls
    assert (align_dir, align_steps) == (tmp_path / "pre" / ALIGN_DIR, 3)
    assert (joint_dir, steps) == (tmp_path / "pre", 2)
    assert align_trainable == {"featurizer", "projector"} and align_moved == {"featurizer", "projector"}
    assert trainable == {"featurizer", "projector", "llm"} and "llm" in moved

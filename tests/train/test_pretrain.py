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
    GROUNDING_FILE,
    SETTINGS_FILE,
    VLM_DIR,
    PretrainSettings,
    pretrain_vlm,
    pretrained_vlm,
    read_grounding,
    resolve_vlm,
)

#: a different value for every setting
CHANGED = {
    "backbone": "qwen2.5-vl-tiny", "cameras": ("base", "wrist"), "image_size": 32, "patch_size": 4,
    "token_merge": 1, "attn_implementation": "sdpa", "samples": 999, "steps": 7, "batch_size": 3,
    "lr": 1e-3, "mixed_precision": "fp16", "mix": {"grounding": 1.0}, "batching": "mixed", "seed": 1,
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


def test_settings_are_checked():
    with pytest.raises(ValueError, match="at least one batch"):
        PretrainSettings(samples=2, batch_size=4)
    with pytest.raises(ValueError, match="Unknown VL categories"):
        PretrainSettings(mix={"vision": 1.0})
    with pytest.raises(ValueError, match="batching"):
        PretrainSettings(batching="random")


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

"""``vlaworks compare``: every recipe trained on the same data and budget, evaluated alike."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vlaworks.compare import CompareConfig, run_compare
from vlaworks.eval.protocol import CONDITIONS
from vlaworks.miniature import MINIATURE
from vlaworks.models.backbones import build_backbone
from vlaworks.sim.generate import generate


def test_config_rejects_unknown_recipe_and_condition(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe"):
        CompareConfig(recipes=("openvla++",), data=tmp_path, suite="object", out=tmp_path)
    with pytest.raises(ValueError, match="unknown evaluation condition"):
        CompareConfig(recipes=("openvla",), data=tmp_path, suite="object", out=tmp_path, conditions=("x",))


def test_default_budget_is_the_demos(tmp_path):
    cfg = CompareConfig(recipes=("openvla",), data=tmp_path, suite="object", out=tmp_path)
    assert cfg.budget == MINIATURE and cfg.conditions == tuple(CONDITIONS)


@pytest.mark.slow
def test_compare_trains_each_recipe_once_and_evaluates_every_condition(tmp_path, one_thread):
    data = tmp_path / "data"
    generate(["object"], episodes=2, out=data, image_size=32)
    # a backbone folder (as `vlaworks pretrain` writes): "before" is then exactly what training started from
    vlm = tmp_path / "vlm"
    build_backbone("prismatic-tiny", image_size=32, patch_size=16).save_pretrained(str(vlm))
    budget = replace(
        MINIATURE,
        backbone=str(vlm),
        image_size=32,
        patch_size=16,
        chunk=2,
        steps=2,
        batch_size=2,
        eval_episodes=1,
        envs_per_worker=1,
    )
    cfg = CompareConfig(
        recipes=("openvla", "openvla+D"),
        data=data,
        suite="object",
        out=tmp_path / "cmp",
        conditions=("clean", "masked"),
        budget=budget,
        tasks=("red_cube_in_bowl",),
        heldout=data,  # the training data itself here: only the plumbing is under test
        probes=2,
    )
    results = run_compare(cfg)
    assert list(results) == ["openvla", "openvla+D"]
    for name, per in results.items():
        assert set(per) == {"train", "clean", "masked", "offline", "probe", "vqa"}
        assert 0 <= per["offline"]["gripper_agreement"] <= 1 and per["offline"]["steps"] > 0
        assert set(per["vqa"]) == {"before", "after"}
        assert per["masked"]["perturbations"] == list(CONDITIONS["masked"])
        assert per["clean"]["perturbations"] == []
        assert per["clean"]["overall"]["n"] == 1  # one task, one episode
        recipe = json.loads((tmp_path / "cmp" / "runs" / name / "recipe.json").read_text())
        assert recipe["policy"]["image_size"] == 32 and recipe["policy"]["chunk_size"] == 2
        assert "patch_size" not in recipe["policy"]["backbone_options"]  # the folder holds its grid
    dual = json.loads((tmp_path / "cmp" / "runs" / "openvla+D" / "recipe.json").read_text())
    assert dual["policy"]["backbone_options"]["dual_encoder"] is True  # shared overrides keep the switch
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert "| openvla+D |" in table and "| clean | masked | final loss | held-out L1" in table
    # the frozen half of the dual encoder probes exactly as the backbone it was copied from
    probe = results["openvla+D"]["probe"]
    assert probe["after"]["frozen"] == probe["before"]["vision"]
    assert "| openvla+D |" in (tmp_path / "cmp" / "representation.md").read_text()
    saved = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert saved["config"]["recipes"] == ["openvla", "openvla+D"]

"""The comparison protocol: same data and budget for every recipe, same evaluation conditions."""

from __future__ import annotations

import json

import pytest

from vlaworks.eval.protocol import (
    CONDITIONS,
    ProtocolConfig,
    condition_perturbations,
    representation_table,
    run_protocol,
)
from vlaworks.models.backbones import build_backbone
from vlaworks.sim.generate import generate


def test_conditions_name_the_seed_004_settings():
    assert condition_perturbations("clean") == ()
    assert condition_perturbations("masked") == ("mask_background:1",)
    variant = {p.split(":")[0] for p in condition_perturbations("variant")}
    assert variant == {"background", "lighting", "layout", "camera"}
    assert condition_perturbations("paraphrase") == ("language:1",)
    with pytest.raises(ValueError, match="unknown evaluation condition 'foggy'"):
        condition_perturbations("foggy")


def test_config_rejects_unknown_recipe_and_condition(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe"):
        ProtocolConfig(recipes=("openvla++",), data=tmp_path, suite="object", out=tmp_path)
    with pytest.raises(ValueError, match="unknown evaluation condition"):
        ProtocolConfig(recipes=("openvla",), data=tmp_path, suite="object", out=tmp_path, conditions=("x",))


@pytest.mark.slow
def test_protocol_trains_each_recipe_once_and_evaluates_every_condition(tmp_path, one_thread):
    data = tmp_path / "data"
    generate(["object"], episodes=2, out=data, image_size=32)
    # a backbone folder (as `vlaworks pretrain` writes): "before" is then exactly what training started from
    vlm = tmp_path / "vlm"
    build_backbone("prismatic-tiny", image_size=32, patch_size=16).save_pretrained(str(vlm))
    cfg = ProtocolConfig(
        recipes=("openvla", "openvla+D"),
        data=data,
        suite="object",
        out=tmp_path / "cmp",
        backbone=str(vlm),
        conditions=("clean", "masked"),
        image_size=32,
        patch_size=16,
        chunk=2,
        steps=2,
        batch_size=2,
        eval_episodes=1,
        tasks=("red_cube_in_bowl",),
        envs_per_worker=1,
        heldout=data,  # the training data itself here: only the plumbing is under test
        probes=2,
    )
    results = run_protocol(cfg)
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
        assert recipe["policy"]["backbone_options"]["patch_size"] == 16
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


def test_representation_table_shows_before_after_and_the_frozen_half():
    vqa = {"before": {"overall": 0.8}, "after": {"overall": 0.25}}
    start = {"vision": {"kind": 0.9, "color": 0.7}}
    single = {"before": start, "after": {"vision": {"kind": 0.6, "color": 0.5}}}
    dual = {
        "before": start,
        "after": {"frozen": {"kind": 0.9, "color": 0.7}, "trained": {"kind": 0.4, "color": 0.3}, "joint": {}},
    }
    results = {"openvla": {"vqa": vqa, "probe": single}, "openvla+D": {"vqa": vqa, "probe": dual}}
    table = representation_table(results)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert rows["openvla"] == "| openvla | 80.0 -> 25.0 | 90.0 -> 60.0 | 70.0 -> 50.0 | - | - |"
    assert rows["openvla+D"] == "| openvla+D | 80.0 -> 25.0 | 90.0 -> 40.0 | 70.0 -> 30.0 | 90.0 | 70.0 |"

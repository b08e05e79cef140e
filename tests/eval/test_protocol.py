"""The evaluation side of the comparison protocol: named conditions and result tables."""

from __future__ import annotations

import pytest

from vlaworks.eval.protocol import condition_perturbations, protocol_table, representation_table
from vlaworks.eval.results import EpisodeResult, EvalResult


def test_conditions_name_the_seed_004_settings():
    assert condition_perturbations("clean") == ()
    assert condition_perturbations("masked") == ("mask_background:1",)
    variant = {p.split(":")[0] for p in condition_perturbations("variant")}
    assert variant == {"background@v1", "lighting@v1", "layout@v1", "camera@v1"}
    assert condition_perturbations("paraphrase") == ("language@v1:1",)
    with pytest.raises(ValueError, match="unknown evaluation condition 'foggy'"):
        condition_perturbations("foggy")


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


def test_protocol_table_has_one_row_per_recipe_and_a_cell_per_condition():
    episode = EpisodeResult("s", "s/t", 0, seed=1, success=True, length=3)
    clean = EvalResult("p", ["s"], 1, "full", [], seed=0, image_size=8, episodes=[episode])
    results = {"vlm4vla": {"train": {"final_loss": 0.125}, "clean": clean.to_dict()}}
    lines = protocol_table(results, ["clean"]).splitlines()
    assert lines[0] == "| recipe | clean | final loss |"
    assert lines[2].startswith("| vlm4vla | 100.0") and lines[2].endswith("(n=1) | 0.1250 |")

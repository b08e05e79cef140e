"""PokeVLA recipes: the Table VI rows as configs of one core, the pre-training rows' backbone
folder, the <SEG> goal parts, and `vlaworks train --recipe pokevla` for two steps from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vlaworks.cli import app
from vlaworks.models.config import PartSpec
from vlaworks.recipes import get_recipe, recipe_names

ROWS = ("pokevla-vanilla", "pokevla+pretraining", "pokevla+geometry", "pokevla+goal", "pokevla")


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory):
    """A 'pretrained' VLM folder: a tiny prismatic backbone saved as `vlaworks pretrain` does."""
    from vlaworks.models.backbones import build_backbone

    folder = tmp_path_factory.mktemp("vlm") / "vlm"
    torch.manual_seed(0)
    build_backbone("prismatic-tiny", image_size=32).save_pretrained(str(folder))
    return folder


def test_rows_switch_components_of_one_core(vlm_folder) -> None:
    recipes = {name: get_recipe(name, backbone=str(vlm_folder)) for name in ROWS}
    assert set(ROWS) <= set(recipe_names())
    for name, recipe in recipes.items():
        policy = recipe.policy
        assert recipe.name == name and policy.head == PartSpec("pokevla_expert")
        assert (policy.chunk_size, policy.cameras, policy.image_size) == (8, ("base", "wrist"), 224)
        assert policy.use_state
        assert policy.lora.enabled
        assert (policy.lora.r, policy.lora.alpha, policy.lora.dropout) == (32, 16, 0.0)
        assert (policy.augment.shift, policy.augment.brightness, policy.augment.contrast) == (6, 0.2, 0.2)
        assert recipe.train == {"lr": 1e-4, "batch_size": 8}
    geometry = PartSpec("geometry_align", {"teacher": "tabletop-depth", "teacher_dim": 96})
    goal = PartSpec("seg_mask")
    assert {n: r.policy.aux_losses for n, r in recipes.items()} == {
        "pokevla-vanilla": [], "pokevla+pretraining": [], "pokevla+geometry": [geometry],
        "pokevla+goal": [goal], "pokevla": [geometry, goal],
    }
    assert {n for n, r in recipes.items() if r.policy.token_sources == [PartSpec("seg")]} == {
        "pokevla+goal", "pokevla"
    }
    goal_rows = ("pokevla+goal", "pokevla")
    assert all(r.policy.token_sources == [] for n, r in recipes.items() if n not in goal_rows)
    # a recipe is a config: the rows differ only in their aux losses and token sources (and names)
    strip = [{**r.policy.to_dict(), "aux_losses": [], "token_sources": []} for r in recipes.values()]
    assert all(s == strip[0] for s in strip)


def test_pretraining_rows_need_a_vlm_folder(vlm_folder) -> None:
    for name in ("pokevla+pretraining", "pokevla"):
        with pytest.raises(ValueError, match="pass --backbone FOLDER"):
            get_recipe(name)
        assert get_recipe(name, backbone=str(vlm_folder)).policy.backbone == str(vlm_folder)
    assert get_recipe("pokevla-vanilla").policy.backbone == "prismatic-tiny"
    bare = get_recipe("pokevla+geometry", proprio=False, teacher="/t", teacher_dim=384)
    assert not bare.policy.use_state
    assert bare.policy.aux_losses[0].options == {"teacher": "/t", "teacher_dim": 384}


def test_goal_row_adds_the_seg_source_and_mask_loss() -> None:
    """``goal=True`` adds the ``seg`` token source and the ``seg_mask`` loss, and the expert then
    cross-attends to <SEG>."""
    from vlaworks.models.backbones import build_backbone
    from vlaworks.models.heads import build_head

    recipe = get_recipe("pokevla+goal")
    assert recipe.policy.token_sources == [PartSpec("seg")]
    assert recipe.policy.aux_losses == [PartSpec("seg_mask")]
    backbone = build_backbone("prismatic-tiny", image_size=32)
    config = recipe.override({"policy.state_dim": 7}).policy
    assert build_head(config.head, backbone, config).seg
    assert not build_head(get_recipe("pokevla-vanilla").policy.head, backbone,
                          get_recipe("pokevla-vanilla").override({"policy.state_dim": 7}).policy).seg


def test_train_two_steps_from_the_cli(vlm_folder, tmp_path) -> None:
    """`vlaworks train --recipe pokevla` (pretrained folder + geometry alignment to a tiny teacher
    folder + <SEG> masks from segmented data) trains two steps; the run's policy loads and
    predicts without loading the teacher."""
    from vlaworks.models.checkpoint import load_policy
    from vlaworks.models.geometry.teacher import GeometryNet, GeometryNetConfig
    from vlaworks.sim.generate import generate

    data = tmp_path / "data"
    generate(["spatial"], episodes=2, out=data, seed=0, image_size=32, segmentation=True)
    torch.manual_seed(0)
    net = GeometryNet(GeometryNetConfig(image_size=32, width=16, layers=1, heads=2))
    teacher = net.save(tmp_path / "teacher")
    aux = [
        {"type": "geometry_align", "options": {"teacher": str(teacher), "teacher_dim": 16}},
        {"type": "seg_mask"},
    ]
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--recipe", "pokevla", "--backbone", str(vlm_folder), "--data", str(data), "--out", str(run),
        "--image-size", "32", "--steps", "2", "--batch-size", "2",
        "--set", "policy.chunk_size=4", "--set", "policy.augment.shift=1", "--set", "train.log_every=1",
        "--set", "policy.head.options.queries=8", "--set", f"policy.aux_losses={json.dumps(aux)}",
    ])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "trained pokevla for 2 steps" in result.output
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert "geometry_align/cos" in header and "seg_mask/loss" in header and len(rows) == 2
    policy = load_policy(run)
    assert policy.config.backbone == str(vlm_folder) and policy.config.state_dim == 7
    obs = {
        "images": {"base": np.zeros((32, 32, 3), np.uint8), "wrist": np.full((32, 32, 3), 200, np.uint8)},
        "state": np.linspace(-0.5, 0.5, 7).astype(np.float32),
        "instruction": "pick up the leftmost cube",
    }
    chunk = policy.predict_chunk([obs])
    assert chunk.shape == (1, 4, 7) and np.isfinite(chunk).all()
    assert not policy.aux_losses[0].teacher_loaded


def test_recipes_command_lists_the_rows_that_need_a_folder() -> None:
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("pokevla")}
    assert set(lines) == set(ROWS)
    assert "--backbone FOLDER" in lines["pokevla+pretraining"]
    assert "geometry alignment" in lines["pokevla+geometry"]

"""Each perturbation family changes what it should and nothing else; parsing errors are clear."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.sim import language
from vlaworks.sim.perturb import MASK_VALUE, Perturbation, parse_perturbations

SEED = 4


def _snapshot(perturbations: list[str], suite: str = "goal") -> dict:
    env = TabletopEnv(suite, image_size=40, perturbations=perturbations, depth=True, segmentation=True)
    try:
        obs, _ = env.reset(seed=SEED)
        scene = env.scene
        return {
            "obs": obs,
            "objects": {o.label: scene.pos(o) for o in env.episode.objects},
            "targets": [(g.obj.label, g.dest.label if g.dest else None) for g in env.episode.goals],
            "cams": env.camera_matrices(),
            "episode": env.episode,
        }
    finally:
        env.close()


@pytest.fixture(scope="module")
def clean():
    return _snapshot([])


def _same_images(a: dict, b: dict, key: str, cam: str) -> bool:
    return np.array_equal(a["obs"][key][cam], b["obs"][key][cam])


def _assert_world_unchanged(clean: dict, other: dict) -> None:
    assert clean["objects"].keys() == other["objects"].keys()
    for label, pos in clean["objects"].items():
        np.testing.assert_allclose(other["objects"][label], pos, atol=1e-9)
    assert clean["targets"] == other["targets"]


def test_parse_perturbations():
    assert parse_perturbations(["lighting:0.5", "camera"]) == [
        Perturbation("lighting", 0.5),
        Perturbation("camera", 1.0),
    ]
    with pytest.raises(ValueError, match="unknown perturbation family 'fog'"):
        parse_perturbations(["fog:0.3"])
    with pytest.raises(ValueError, match="not a number"):
        parse_perturbations(["lighting:high"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        parse_perturbations(["noise:1.5"])
    with pytest.raises(ValueError, match="given twice"):
        parse_perturbations(["noise:0.1", "noise:0.2"])


def test_clean_is_the_default_and_severity_zero_is_clean(clean):
    zero = _snapshot(["camera:0", "lighting:0", "noise:0", "language:0", "robot_init:0", "layout:0"])
    for key in ("images", "depth", "segmentation"):
        for cam in ("base", "wrist"):
            assert _same_images(clean, zero, key, cam), (key, cam)
    assert zero["obs"]["instruction"] == clean["obs"]["instruction"]


def test_camera_moves_only_the_base_view(clean):
    p = _snapshot(["camera:1.0"])
    _assert_world_unchanged(clean, p)
    assert not _same_images(clean, p, "images", "base")
    assert _same_images(clean, p, "images", "wrist")
    assert not np.allclose(clean["cams"]["base"]["extrinsics"], p["cams"]["base"]["extrinsics"])
    np.testing.assert_array_equal(clean["obs"]["state"], p["obs"]["state"])
    assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_robot_init_moves_only_the_gripper(clean):
    p = _snapshot(["robot_init:1.0"])
    _assert_world_unchanged(clean, p)
    shift = np.linalg.norm(p["obs"]["state"][:3] - clean["obs"]["state"][:3])
    assert 0.05 < shift < 0.11
    assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_language_paraphrases_only_the_instruction(clean):
    for severity in (0.2, 0.5, 1.0):
        p = _snapshot([f"language:{severity}"])
        _assert_world_unchanged(clean, p)
        for cam in ("base", "wrist"):
            assert _same_images(clean, p, "images", cam)
        text = p["obs"]["instruction"]
        assert text != clean["obs"]["instruction"]
        assert text not in language.all_training_instructions(p["episode"])


def test_paraphrase_templates_are_disjoint_from_training():
    for verb, templates in language.TRAIN_TEMPLATES.items():
        assert not set(templates) & set(language.PARAPHRASE_TEMPLATES[verb])


@pytest.mark.parametrize("family", ["lighting", "background"])
def test_appearance_changes_pixels_not_geometry(clean, family):
    p = _snapshot([f"{family}:1.0"])
    _assert_world_unchanged(clean, p)
    assert not _same_images(clean, p, "images", "base")
    for cam in ("base", "wrist"):
        assert _same_images(clean, p, "depth", cam)
        assert _same_images(clean, p, "segmentation", cam)
    assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_noise_changes_rgb_only(clean):
    p = _snapshot(["noise:0.5"])
    _assert_world_unchanged(clean, p)
    for cam in ("base", "wrist"):
        diff = p["obs"]["images"][cam].astype(float) - clean["obs"]["images"][cam]
        assert 5 < diff.std() < 25
        assert _same_images(clean, p, "depth", cam) and _same_images(clean, p, "segmentation", cam)


def test_layout_adds_distractors_without_moving_task_objects(clean):
    p = _snapshot(["layout:1.0"])
    extra = set(p["objects"]) - set(clean["objects"])
    assert len(extra) == 3
    for label, pos in clean["objects"].items():
        np.testing.assert_allclose(p["objects"][label], pos, atol=1e-3)
    assert p["targets"] == clean["targets"]
    assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_mask_background_keeps_objects_and_gripper(clean):
    p = _snapshot(["mask_background:1.0"])
    for cam in ("base", "wrist"):
        seg = clean["obs"]["segmentation"][cam]
        fg = seg > 0
        assert fg.any() and (~fg).any()
        np.testing.assert_array_equal(p["obs"]["images"][cam][fg], clean["obs"]["images"][cam][fg])
        assert (p["obs"]["images"][cam][~fg] == MASK_VALUE).all()

"""TabletopEnv: observation contract, determinism, gymnasium conformance, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vlaworks.envs import make_env
from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.sim.scene import STATE_DIM


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv("spatial", image_size=32, depth=True, segmentation=True)
    yield e
    e.close()


def test_observation_matches_the_env_contract(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {"images", "state", "instruction", "depth", "segmentation"}
    for cam in ("base", "wrist"):
        assert obs["images"][cam].shape == (32, 32, 3) and obs["images"][cam].dtype == np.uint8
        assert obs["depth"][cam].shape == (32, 32) and obs["depth"][cam].dtype == np.float32
        assert obs["segmentation"][cam].dtype == np.int32
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert isinstance(obs["instruction"], str) and obs["instruction"] == env.instruction
    assert info["task"] in env.tasks and info["success"] is False
    assert env.camera_names == ("base", "wrist") and env.max_episode_steps > 0
    assert set(env.segmentation_labels().values()) >= {"gripper", "red cube", "bowl"}
    mats = env.camera_matrices()
    assert mats["base"]["intrinsics"].shape == (3, 3) and mats["wrist"]["extrinsics"].shape == (4, 4)


def test_rgb_only_by_default_and_camera_subset():
    e = TabletopEnv("object", image_size=24, cameras=("wrist",))
    try:
        obs, _ = e.reset(seed=1)
        assert set(obs) == {"images", "state", "instruction"} and set(obs["images"]) == {"wrist"}
        assert e.observation_space.contains(obs)
    finally:
        e.close()


def test_same_seed_same_episode(env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(5, 7)).astype(np.float32)

    def run(seed):
        obs, _ = env.reset(seed=seed)
        trace = [obs]
        for a in actions:
            trace.append(env.step(a)[0])
        return trace

    a, b, c = run(7), run(7), run(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["images"]["base"], y["images"]["base"])
        np.testing.assert_array_equal(x["images"]["wrist"], y["images"]["wrist"])
        np.testing.assert_array_equal(x["state"], y["state"])
        assert x["instruction"] == y["instruction"]
    assert not np.array_equal(a[0]["images"]["base"], c[0]["images"]["base"])


def test_tasks_cycle_by_seed_and_fixed_task():
    e = TabletopEnv("goal", image_size=16, cameras=("base",))
    try:
        seen = {e.reset(seed=s)[1]["task"] for s in range(len(e.tasks))}
        assert seen == set(e.tasks)
    finally:
        e.close()
    e = TabletopEnv("goal", task="lift_yellow_cube", image_size=16, cameras=("base",))
    try:
        assert e.reset(seed=3)[1]["task"] == "goal/lift_yellow_cube"
    finally:
        e.close()


def test_truncates_at_the_step_limit():
    e = TabletopEnv("spatial", image_size=16, cameras=("base",), max_episode_steps=3)
    try:
        e.reset(seed=0)
        flags = [e.step(np.zeros(7, np.float32))[3] for _ in range(3)]
        assert flags == [False, False, True]
    finally:
        e.close()


def test_gymnasium_env_checker():
    e = TabletopEnv("goal", image_size=16, cameras=("base",))
    try:
        check_env(e, skip_render_check=True)
    finally:
        e.close()


def test_bad_inputs_are_explained(env):
    with pytest.raises(ValueError, match="unknown suite"):
        TabletopEnv("kitchen")
    with pytest.raises(ValueError, match="unknown task"):
        TabletopEnv("spatial", task="nope")
    with pytest.raises(ValueError, match="unknown camera"):
        TabletopEnv("spatial", cameras=("top",))
    with pytest.raises(ValueError, match="unknown perturbation family"):
        TabletopEnv("spatial", perturbations=["fog:0.5"])
    with pytest.raises(ValueError, match="unknown environment"):
        make_env("kitchen")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be 7"):
        env.step(np.zeros(6))


def test_make_env_builds_tabletop():
    e = make_env("tabletop", suite="long", image_size=16, cameras=("base",))
    try:
        assert isinstance(e, TabletopEnv) and e.tasks[0].startswith("long/")
    finally:
        e.close()


def test_same_seed_same_episode_across_instances():
    obs = []
    for _ in range(2):
        e = TabletopEnv("long", image_size=24, perturbations=["lighting:0.5", "noise:0.3", "layout:0.7"])
        try:
            o, _ = e.reset(seed=11)
            o, *_ = e.step(np.full(7, 0.5, np.float32))
            obs.append(o)
        finally:
            e.close()
    for cam in ("base", "wrist"):
        np.testing.assert_array_equal(obs[0]["images"][cam], obs[1]["images"][cam])
    np.testing.assert_array_equal(obs[0]["state"], obs[1]["state"])
    assert obs[0]["instruction"] == obs[1]["instruction"]


def test_prompt_mode_holds_the_targets_ground_truth_prompt_for_the_episode():
    text = TabletopEnv("spatial", image_size=32, segmentation=True)
    box = TabletopEnv("spatial", image_size=32, segmentation=True, prompt_mode="box")
    masked = TabletopEnv("spatial", image_size=32, prompt_mode="text+mask", prompt_camera="wrist")
    try:
        obs, _ = text.reset(seed=5)
        assert "visual_prompts" not in obs and "pixel_masks" not in obs
        target = text.episode.goals[0].obj
        mask = obs["segmentation"]["base"] == target.seg_id
        assert mask.any() and np.array_equal(text.target_mask(), mask)
        first, _ = box.reset(seed=5)
        (prompt,) = first["visual_prompts"]
        rows, cols = np.nonzero(mask)
        assert (prompt.kind, prompt.camera) == ("box", "base")
        corners = ((cols.min() / 32, rows.min() / 32), ((cols.max() + 1) / 32, (rows.max() + 1) / 32))
        assert prompt.coords == corners
        later = first
        for _ in range(3):
            later, *_ = box.step(np.array([0.5, 0, 0, 0, 0, 0, 1], np.float32))
        assert later["visual_prompts"] == first["visual_prompts"]  # held, not re-derived per step
        obs, _ = masked.reset(seed=5)
        assert set(obs["pixel_masks"]) == {"wrist"}
        assert np.array_equal(obs["pixel_masks"]["wrist"], masked.target_mask("wrist"))
    finally:
        for e in (text, box, masked):
            e.close()
    with pytest.raises(ValueError, match="Unknown prompt mode"):
        TabletopEnv("spatial", prompt_mode="arrow")
    with pytest.raises(ValueError, match="prompt_camera 'base'"):
        TabletopEnv("spatial", cameras=("wrist",), prompt_mode="point")

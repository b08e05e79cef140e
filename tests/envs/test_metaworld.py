"""MetaWorldEnv: observation contract, camera flip, action mapping, success, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from vlaworks.envs import make_env  # noqa: E402
from vlaworks.envs.metaworld import (  # noqa: E402
    FPS,
    INSTRUCTIONS,
    MetaWorldEnv,
    from_metaworld,
    task_class,
    to_metaworld,
)
from vlaworks.envs.metaworld_protocol import MT10  # noqa: E402
from vlaworks.sim.scene import STATE_DIM  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = MetaWorldEnv("mt10", task="reach-v3", image_size=32)
    yield e
    e.close()


def test_observation_matches_the_env_contract(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {"images", "state", "instruction"}
    for cam in ("base", "wrist"):
        assert obs["images"][cam].shape == (32, 32, 3) and obs["images"][cam].dtype == np.uint8
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert np.all(obs["state"][3:6] == 0) and obs["state"][6] > 0  # no rotation; fingers apart
    assert obs["instruction"] == INSTRUCTIONS["reach-v3"]
    assert info == {"success": False, "task": "mt10/reach-v3", "instruction": obs["instruction"]}
    assert env.observation_space.contains(obs) and env.action_space.shape == (7,)
    assert env.tasks == [f"mt10/{t}" for t in MT10.tasks] and env.max_episode_steps == 500
    assert round(1 / env._mw.dt) == FPS
    step_obs, reward, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
    assert env.observation_space.contains(step_obs) and np.isfinite(reward)
    assert not terminated and not truncated


def test_corner_views_are_turned_and_the_wrist_view_is_not(env):
    obs, _ = env.reset(seed=1)
    raw = {}
    for cam in ("corner4", "gripperPOV"):
        env._renderer.update_scene(env._mw.data, camera=cam)
        raw[cam] = env._renderer.render().copy()
    np.testing.assert_array_equal(obs["images"]["base"], raw["corner4"][::-1, ::-1])
    np.testing.assert_array_equal(obs["images"]["wrist"], raw["gripperPOV"])


def test_same_seed_same_episode_and_rotations_are_ignored(env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(4, 7)).astype(np.float32)
    still = actions.copy()
    still[:, 3:6] = 0.0

    def run(seed, acts):
        obs, _ = env.reset(seed=seed)
        trace = [(obs, env.privileged_observation.copy())]
        trace += [(env.step(a)[0], env.privileged_observation.copy()) for a in acts]
        return trace

    a, b, c = run(7, actions), run(7, still), run(8, actions)
    for (x, px), (y, py) in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["images"]["base"], y["images"]["base"])
        np.testing.assert_array_equal(x["state"], y["state"])
        np.testing.assert_array_equal(px, py)
    assert not np.allclose(a[0][1][-3:], c[0][1][-3:])  # another seed, another goal


def test_the_expert_succeeds_and_success_comes_from_metaworld(env):
    obs, _ = env.reset(seed=2)
    expert = env.expert()
    expert.reset()
    for _ in range(env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert terminated and info["success"] is True
    assert np.all(expert.clean_action[3:6] == 0) and expert.clean_action.dtype == np.float32
    assert env._mw.evaluate_state(env.privileged_observation, to_metaworld(expert.clean_action))[1]["success"]


def test_success_flag_is_metaworlds_info(env, monkeypatch):
    env.reset(seed=3)
    real_step = env._mw.step

    def flagged(action):
        out = real_step(action)
        return (*out[:4], {**out[4], "success": 1.0})

    monkeypatch.setattr(env._mw, "step", flagged)
    _, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
    assert terminated and not truncated and info["success"] is True


def test_action_mapping_keeps_translation_and_gripper():
    ours = np.array([0.1, -0.2, 0.3, 0.9, 0.9, 0.9, -1.0], np.float32)
    np.testing.assert_allclose(to_metaworld(ours), [0.1, -0.2, 0.3, -1.0])
    np.testing.assert_allclose(from_metaworld([0.1, -0.2, 3.0, 1.0]), [0.1, -0.2, 1.0, 0, 0, 0, 1.0])


def test_step_limit_truncates_and_tasks_cycle_by_seed():
    e = make_env("metaworld", suite="mt10", image_size=16, cameras=("corner2",), max_episode_steps=2)
    try:
        _, info = e.reset(seed=13)
        assert info["task"] == f"mt10/{MT10.tasks[13 % 10]}"
        assert not e.step(np.zeros(7))[3] and e.step(np.zeros(7))[3]
    finally:
        e.close()


def test_the_weld_fits_the_running_mujoco():
    mw = task_class("reach-v3")()
    try:
        row = mw.model.eq_data[0]
        assert row[6] == -1.0 and row[10] == 5.0 and not np.any(np.delete(row, [6, 10]))
    finally:
        mw.close()


def test_bad_arguments_are_clear_errors(env):
    with pytest.raises(ValueError, match="unknown task 'fly-v3'"):
        MetaWorldEnv(task="fly-v3")
    with pytest.raises(ValueError, match="unknown Meta-World suite 'mt99'"):
        MetaWorldEnv(suite="mt99")
    with pytest.raises(ValueError, match="unknown camera"):
        MetaWorldEnv(cameras=("ceiling",))
    with pytest.raises(ValueError, match="no perturbations"):
        MetaWorldEnv(perturbations=("lighting:0.5",))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="7 finite numbers"):
        env.step(np.zeros(4))

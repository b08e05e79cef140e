"""LiberoEnv on the real simulator: runs only where LIBERO is installed (``.venv-libero``, made
by ``scripts/setup_libero.sh``); elsewhere every test here is skipped.

    MUJOCO_GL=egl .venv-libero/bin/python -m pytest -q -p no:cacheprovider tests/envs/test_libero_env.py
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO lives in .venv-libero (scripts/setup_libero.sh)")

from vlaworks.envs import make_env  # noqa: E402
from vlaworks.envs.libero import _CHARSET, SUITES, LiberoPackage  # noqa: E402

ZERO = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32)


def test_the_four_suites_have_ten_tasks_with_fifty_init_states_each():
    for suite in SUITES:
        source = LiberoPackage(suite)
        assert len(source.names) == 10, suite
        assert all(set(text) <= _CHARSET for text in source.instructions), suite
        states = source.init_states(0)
        assert states.shape[0] == 50 and states.ndim == 2 and np.isfinite(states).all()


@pytest.fixture(scope="module")
def env():
    e = make_env(
        "libero", suite="libero_spatial", task=LiberoPackage("libero_spatial").names[0], image_size=64,
        render_size=64, num_steps_wait=2, max_episode_steps=4,
    )
    yield e
    e.close()


@pytest.mark.slow
def test_a_zero_policy_steps_from_init_state_0_and_fails(env):
    obs, info = env.reset(seed=0, options={"episode": 0})
    assert env.init_state_index == 0 and info["success"] is False
    shapes = {k: v.shape for k, v in obs["images"].items()}
    assert shapes == {"image": (64, 64, 3), "wrist_image": (64, 64, 3)}
    assert obs["images"]["image"].std() > 5  # a rendered scene, not a blank frame
    assert obs["state"].shape == (8,) and np.isfinite(obs["state"]).all()
    assert 0.0 < obs["state"][6] < 0.05 and -0.05 < obs["state"][7] < 0.0  # fingers open
    assert obs["instruction"].startswith("pick up the black bowl")
    outcomes = [env.step(ZERO)[2:4] for _ in range(4)]
    assert outcomes == [(False, False)] * 3 + [(False, True)]


@pytest.mark.slow
def test_actions_follow_the_delta_pose_and_gripper_convention(env):
    """+x moves the end effector along +x; +1 closes the fingers (LIBERO's convention = ours)."""
    obs, _ = env.reset(seed=0, options={"episode": 1})
    start = obs["state"]
    for _ in range(3):
        obs, *_ = env.step(np.array([1, 0, 0, 0, 0, 0, 1], dtype=np.float32))
    assert obs["state"][0] - start[0] > 0.01 and abs(obs["state"][1] - start[1]) < 0.01
    assert obs["state"][6] < start[6]  # closing


@pytest.mark.slow
def test_evaluate_runs_a_chunk_policy_on_libero(tmp_path):
    from vlaworks.eval.run import evaluate

    class Zero:
        chunk_size = 2

        def reset(self) -> None:
            pass

        def predict_chunk(self, observations: list[dict]) -> np.ndarray:
            return np.tile(ZERO, (len(observations), self.chunk_size, 1))

    result = evaluate(
        lambda envs: Zero(), ["libero/libero_object"], 1, out=tmp_path, image_size=32, videos=1,
        tasks=[LiberoPackage("libero_object").names[0]], quiet=True,
        env_kwargs={"render_size": 64, "num_steps_wait": 1, "max_episode_steps": 3},
    )
    (episode,) = result.episodes
    assert (episode.success, episode.length, episode.suite) == (False, 3, "libero/libero_object")
    assert (tmp_path / "results.json").is_file() and (tmp_path / episode.video).is_file()

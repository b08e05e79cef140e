"""The LIBERO adapter's protocol logic, without the simulator: a stand-in suite drives
:class:`LiberoEnv` (init state per episode, wait steps, step limits, success, views, state).
The real simulator is exercised by ``test_libero_env.py`` in ``.venv-libero``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from vlaworks.envs import make_env
from vlaworks.envs.libero import (
    CAMERAS,
    LiberoEnv,
    LiberoProtocol,
    libero_state,
    make_libero_env,
    prepare_image,
    quat_to_axis_angle,
    resize_with_pad,
)

RENDER = 24


def raw_observation(level: int, cameras: Sequence[str]) -> dict:
    """A LIBERO-like raw observation; each view is a gradient so flips are visible."""
    ramp = np.arange(RENDER * RENDER, dtype=np.int64).reshape(RENDER, RENDER) % 200
    obs = {
        "robot0_eef_pos": np.array([0.1, -0.2, 1.0 + level]),
        "robot0_eef_quat": np.array([0.0, 0.0, np.sin(0.25), np.cos(0.25)]),  # 0.5 rad about z
        "robot0_gripper_qpos": np.array([0.04, -0.04]),
    }
    for i, cam in enumerate(cameras):
        obs[f"{cam}_image"] = np.stack([ramp, ramp, np.full_like(ramp, level + 10 * i)], -1).astype(np.uint8)
    return obs


class FakeSimulator:
    """Records what the adapter asks; ``done`` once an action's x exceeds the init state's value."""

    def __init__(self, task: int, cameras: Sequence[str], size: int, horizon: int) -> None:
        self.task, self.cameras, self.size, self.horizon = task, list(cameras), size, horizon
        self.calls: list[tuple] = []
        self.state = 0.0
        self.t = 0
        self.closed = False

    def seed(self, seed: int) -> None:
        self.calls.append(("seed", seed))

    def reset(self) -> None:
        self.calls.append(("reset",))

    def set_init_state(self, state: np.ndarray) -> dict:
        self.calls.append(("init", float(state[0])))
        self.state, self.t = float(state[0]), 0
        return raw_observation(0, self.cameras)

    def step(self, action: list[float]) -> tuple[dict, float, bool, dict]:
        assert isinstance(action, list) and len(action) == 7
        self.calls.append(("step", tuple(action)))
        self.t += 1
        done = action[0] > self.state
        return raw_observation(self.t, self.cameras), float(done), done, {}

    def close(self) -> None:
        self.closed = True


class FakeSuite:
    """Two tasks with three init states each (init state k holds the number k)."""

    built: list[FakeSimulator] = []

    def __init__(self, suite: str) -> None:
        self.names = ["pick_the_bowl", "open_the_drawer"]
        self.instructions = ["pick the bowl", "open the drawer"]

    def init_states(self, task: int) -> np.ndarray:
        return np.arange(3, dtype=np.float64)[:, None].repeat(4, axis=1)

    def make_simulator(self, task: int, *, cameras: Sequence[str], size: int, horizon: int) -> FakeSimulator:
        sim = FakeSimulator(task, cameras, size, horizon)
        FakeSuite.built.append(sim)
        return sim


@pytest.fixture
def suite():
    FakeSuite.built = []
    return FakeSuite


def fake_env(**kwargs) -> LiberoEnv:
    options = {"suite": "libero_spatial", "image_size": 16, "protocol": LiberoProtocol(render_size=RENDER)}
    return LiberoEnv(**(options | kwargs), source=FakeSuite)


def test_axis_angle_matches_scipy_and_the_identity_is_zero():
    assert np.array_equal(quat_to_axis_angle([0.0, 0.0, 0.0, 1.0]), np.zeros(3))
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[3])  # w >= 0: scipy's rotation vector has angle <= pi
        np.testing.assert_allclose(quat_to_axis_angle(q), Rotation.from_quat(q).as_rotvec(), atol=1e-9)


def test_state_is_eef_position_axis_angle_and_finger_positions():
    state = libero_state(raw_observation(0, ()))
    assert state.shape == (8,) and state.dtype == np.float32
    np.testing.assert_allclose(state, [0.1, -0.2, 1.0, 0.0, 0.0, 0.5, 0.04, -0.04], atol=1e-6)


def test_views_are_rotated_180_degrees_then_resized_with_padding():
    image = np.random.default_rng(1).integers(0, 255, (RENDER, RENDER, 3), dtype=np.uint8)
    assert np.array_equal(prepare_image(image, RENDER), np.rot90(image, 2))
    assert np.array_equal(prepare_image(image, RENDER, flip=False), image)
    assert prepare_image(image, 10).shape == (10, 10, 3)
    wide = np.full((10, 20, 3), 200, dtype=np.uint8)
    padded = resize_with_pad(wide, 8)  # 20 x 10 -> 8 x 4, centred: rows 2..5 filled
    assert padded.shape == (8, 8, 3)
    assert (padded[2:6] == 200).all() and (padded[:2] == 0).all() and (padded[6:] == 0).all()


def test_protocol_holds_openpis_settings_and_is_frozen():
    p = LiberoProtocol()
    assert [p.steps_for(s) for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10")] == [
        220, 280, 300, 520,
    ]
    assert (p.num_steps_wait, p.render_size, p.flip, p.wait_action[-1]) == (10, 256, True, -1.0)
    assert p.steps_for("libero_spatial_lan") == 220 and p.steps_for("libero_10_swap") == 520
    with pytest.raises(ValueError, match="No step limit for LIBERO suite 'libero_mine'.*max_episode_steps"):
        p.steps_for("libero_mine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.num_steps_wait = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="num_steps_wait must be >= 0"):
        LiberoProtocol(num_steps_wait=-1)
    with pytest.raises(ValueError, match="wait_action must have 7 numbers"):
        LiberoProtocol(wait_action=(0.0, -1.0))


def test_reset_restores_the_episodes_init_state_then_waits(suite):
    env = fake_env(task="pick_the_bowl")
    obs, info = env.reset(seed=5, options={"episode": 2})
    sim = suite.built[0]
    wait = tuple(LiberoProtocol().wait_action)
    assert sim.calls[:3] == [("seed", 5), ("reset",), ("init", 2.0)]
    assert sim.calls[3:] == [("step", wait)] * 10
    assert (sim.cameras, sim.size, sim.horizon) == (["agentview", "robot0_eye_in_hand"], RENDER, 10 + 220)
    assert set(obs["images"]) == {"image", "wrist_image"} and obs["images"]["image"].shape == (16, 16, 3)
    assert obs["state"].shape == (8,) and obs["instruction"] == "pick the bowl"
    assert info == {"success": False, "task": "libero_spatial/pick_the_bowl", "instruction": "pick the bowl"}
    assert env.init_state_index == 2 and env.max_episode_steps == 220
    with pytest.raises(ValueError, match="has 3 init states; episode 3 has none"):
        env.reset(seed=0, options={"episode": 3})
    env.reset(options={"episode": 0})
    assert suite.built[0].calls[-13] == ("seed", 7)  # no reset seed: the protocol's
    assert len(suite.built) == 1  # the task's simulator is kept between episodes
    env.close()
    assert sim.closed


def test_success_ends_the_episode_and_the_step_limit_truncates_it(suite):
    env = fake_env(task="libero_spatial/open_the_drawer", max_episode_steps=3)
    env.reset(seed=0, options={"episode": 1})
    _, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert (reward, terminated, truncated, info["success"]) == (0.0, False, False, False)
    _, reward, terminated, truncated, info = env.step(np.array([1.5, 0, 0, 0, 0, 0, 1]))
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    env.reset(seed=0, options={"episode": 2})
    results = [env.step(np.zeros(7))[2:4] for _ in range(3)]
    assert results == [(False, False), (False, False), (False, True)]
    with pytest.raises(ValueError, match="action must be 7 finite numbers"):
        env.step(np.full(7, np.nan))


def test_a_single_camera_is_the_only_one_rendered_and_views_are_rotated(suite):
    env = fake_env(cameras=["wrist_image"], image_size=RENDER, task="pick_the_bowl")
    obs, _ = env.reset(seed=0, options={"episode": 0})
    assert suite.built[0].cameras == ["robot0_eye_in_hand"] and list(obs["images"]) == ["wrist_image"]
    raw = raw_observation(10, ["robot0_eye_in_hand"])["robot0_eye_in_hand_image"]  # after 10 wait steps
    assert np.array_equal(obs["images"]["wrist_image"], np.rot90(raw, 2))


def test_without_a_task_each_reset_draws_one_and_rebuilds_the_simulator_when_it_changes(suite):
    env = fake_env()
    assert env.tasks == ["libero_spatial/pick_the_bowl", "libero_spatial/open_the_drawer"]
    seen = {env.reset(seed=s)[1]["task"] for s in range(8)}
    assert seen == set(env.tasks)
    assert 2 <= len(suite.built) <= 8 and all(s.closed for s in suite.built[:-1])


# the state has no fixed bounds
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")
def test_passes_gymnasiums_env_checker(suite):
    env = fake_env(task="pick_the_bowl")
    check_env(env, skip_render_check=True)


def test_bad_arguments_are_one_line_errors(suite):
    with pytest.raises(ValueError, match="takes no --perturb"):
        fake_env(perturbations=("lighting:0.5",))
    with pytest.raises(ValueError, match="LIBERO cameras must be distinct names from"):
        fake_env(cameras=["base"])
    with pytest.raises(ValueError, match="Unknown task 'fly' of LIBERO suite 'libero_spatial'"):
        fake_env(task="fly")
    with pytest.raises(ValueError, match="max_episode_steps must be >= 1"):
        fake_env(max_episode_steps=0)


def test_the_factory_takes_protocol_fields_and_rejects_unknown_options(suite):
    env = make_libero_env(suite="libero_goal", num_steps_wait=0, render_size=RENDER, source=FakeSuite)
    assert env.protocol == LiberoProtocol(num_steps_wait=0, render_size=RENDER)
    assert env.max_episode_steps == 300 and env.camera_names == tuple(CAMERAS)
    with pytest.raises(ValueError, match=r"no option\(s\) \['layout'\]"):
        make_libero_env(suite="libero_goal", layout="fixed", source=FakeSuite)


class HalfStepPolicy:
    """Chunks of x = 0.5 with the gripper open."""

    chunk_size = 4

    def reset(self) -> None:
        pass

    def predict_chunk(self, observations: list[dict]) -> np.ndarray:
        out = np.zeros((len(observations), self.chunk_size, 7), dtype=np.float32)
        out[..., 0], out[..., 6] = 0.5, -1.0
        return out


def test_evaluation_starts_episode_k_from_init_state_k(suite, tmp_path):
    """The fake is done once x exceeds the init state's number, so x = 0.5 succeeds from
    init state 0 only: success per episode shows which init state each one started from."""
    from vlaworks.eval.run import evaluate

    def factory(suite_name: str, task: str | None, **kwargs) -> LiberoEnv:
        return make_libero_env(suite=suite_name, task=task, num_steps_wait=1, source=FakeSuite, **kwargs)

    result = evaluate(
        lambda envs: HalfStepPolicy(), ["libero_spatial"], 3, out=tmp_path, env_factory=factory,
        env_kwargs={"max_episode_steps": 5}, videos=0, quiet=True,
    )
    assert [e.success for e in result.episodes] == [True, False, False] * 2
    assert [e.length for e in result.episodes] == [1, 5, 5] * 2
    tasks = ["libero_spatial/pick_the_bowl", "libero_spatial/open_the_drawer"]
    assert [e.task for e in result.episodes[::3]] == tasks
    inits = [c[1] for s in suite.built for c in s.calls if c[0] == "init"]
    assert inits == [0.0, 1.0, 2.0] * 2
    built = len(suite.built)
    with pytest.raises(ValueError, match="has 3 episodes per task; pass --episodes 3 or fewer"):
        evaluate(lambda envs: HalfStepPolicy(), ["libero_spatial"], 4, out=tmp_path, env_factory=factory)
    assert len(suite.built) == built  # refused before any simulator was built


def test_eval_cli_forwards_the_env_and_its_options(monkeypatch, tmp_path):
    import vlaworks.eval.run
    from vlaworks.cli import app
    from vlaworks.eval.results import EvalResult

    seen = {}

    def fake_evaluate(policy, suites, episodes, *args, **kwargs):
        seen.update(suites=suites, episodes=episodes, env_kwargs=kwargs["env_kwargs"], tasks=kwargs["tasks"])
        return EvalResult("p", list(suites), episodes, "full", [], 0, 224)

    monkeypatch.setattr(vlaworks.eval.run, "evaluate", fake_evaluate)
    args = ["eval", "--policy", "expert", "--env", "libero", "--suite", "libero_spatial", "--suite",
            "libero_10", "--episodes", "2", "--out", str(tmp_path), "--env-option", "num_steps_wait=5",
            "--env-option", 'cameras=["image"]', "--task", "pick_the_bowl"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == {
        "suites": ["libero/libero_spatial", "libero/libero_10"], "episodes": 2,
        "env_kwargs": {"num_steps_wait": 5, "cameras": ["image"]}, "tasks": ["pick_the_bowl"],
    }
    bad = CliRunner().invoke(app, [*args[:-2], "--env-option", "novalue"])
    assert bad.exit_code == 2 and "--env-option expects KEY=VALUE" in bad.output


def test_the_registry_builds_libero_envs_or_says_how_to_install_it():
    try:
        import libero.libero  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="scripts/setup_libero.sh"):
            make_env("libero", suite="libero_spatial")
    else:
        env = make_env("libero", suite="libero_spatial")
        assert len(env.tasks) == 10
        env.close()

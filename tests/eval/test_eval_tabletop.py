"""The evaluator on the built-in MuJoCo tabletop world (through ``vlaworks.envs.make_env``)."""

import av
import numpy as np
import pytest

from vlaworks.eval.rollout import episode_seed
from vlaworks.eval.run import evaluate

pytest.importorskip("vlaworks.envs.tabletop")  # sets MUJOCO_GL before mujoco loads
TASK = "spatial/pick_leftmost_place_bowl"


def _direct_expert_rollout(seed: int) -> tuple[bool, int]:
    from vlaworks.envs import make_env

    env = make_env("tabletop", suite="spatial", task=TASK, image_size=32)
    expert = env.expert()
    obs, info = env.reset(seed=seed)
    expert.reset()
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        steps += 1
        done = terminated or truncated
    env.close()
    return bool(info["success"]), steps


def test_expert_policy_reproduces_the_scripted_expert(tmp_path):
    result = evaluate(
        "expert", ["spatial"], 2, tasks=[TASK], out=tmp_path, image_size=32, videos=1, quiet=True
    )
    expected = [_direct_expert_rollout(episode_seed(0, TASK, k)) for k in range(2)]
    assert [(e.success, e.length) for e in result.episodes] == expected
    assert result.overall().rate == np.mean([ok for ok, _ in expected])
    assert all(e.instruction for e in result.episodes)
    video = tmp_path / result.episodes[0].video
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
    assert (frame.height, frame.width) == (32, 64)  # base | wrist


class _Recorder:
    """A policy that stands still and keeps every observation it is given."""

    chunk_size = 2
    seen: list[dict] = []

    def reset(self) -> None:
        pass

    def predict_chunk(self, observations: list[dict]) -> np.ndarray:
        _Recorder.seen.extend(observations)
        return np.zeros((len(observations), 2, 7), np.float32)


def _recorder(envs) -> _Recorder:
    return _Recorder()


def test_prompt_mode_gives_every_observation_the_targets_prompt(tmp_path):
    _Recorder.seen = []
    result = evaluate(
        _recorder, ["spatial"], 1, tasks=[TASK], out=tmp_path, image_size=32, videos=0, quiet=True,
        prompt_mode="point", env_kwargs={"max_episode_steps": 4},
    )
    assert result.prompt_mode == "point" and "prompt=point" in result.setting
    assert len(_Recorder.seen) == 2 and all(o["visual_prompts"][0].kind == "point" for o in _Recorder.seen)
    assert '"prompt_mode": "point"' in (tmp_path / "results.json").read_text()
    with pytest.raises(ValueError, match="Unknown prompt mode"):
        evaluate(_recorder, ["spatial"], 1, out=tmp_path / "x", prompt_mode="arrow", quiet=True)

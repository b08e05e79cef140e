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

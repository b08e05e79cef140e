"""Meta-World end to end: expert demonstrations read back by our reader, `eval` runs a policy."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("metaworld")

from vlaworks.cli import app  # noqa: E402
from vlaworks.data.lerobot import LeRobotDataset  # noqa: E402
from vlaworks.envs.metaworld import FPS, INSTRUCTIONS  # noqa: E402
from vlaworks.envs.metaworld_data import generate  # noqa: E402
from vlaworks.eval.run import evaluate  # noqa: E402

runner = CliRunner()


@pytest.mark.slow
def test_expert_demonstrations_read_back(tmp_path):
    out = tmp_path / "mw"
    report = generate("mt10", episodes=1, out=out, tasks=["reach-v3"], image_size=32)
    r = report["tasks"]["mt10/reach-v3"]
    assert r["kept"] == 1 and r["success_rate"] == 1.0 and report["bytes"] > 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 1 and ds.fps == FPS and ds.camera_names == ["base", "wrist"]
    ep = ds.episode(0)
    n = len(ep["action"])
    assert n == r["frames"] and ep["observation.images.base"].shape == (n, 32, 32, 3)
    assert ep["observation.state"].shape == (n, 7) and ep["action"].shape == (n, 7)
    assert np.all(ep["action"][:, 3:6] == 0) and np.abs(ep["action"]).max() <= 1.0
    assert ep["task"] == INSTRUCTIONS["reach-v3"]


def test_generate_rejects_unknown_tasks_and_tabletop_options(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        generate("mt10", episodes=1, out=tmp_path / "x", tasks=["fly-v3"])
    result = runner.invoke(
        app, ["generate", "--env", "metaworld", "--suite", "mt10", "--episodes", "1", "--depth",
              "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 2 and "--depth exist only for --env tabletop" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _zero_policy(envs):
    class Zero:
        def reset(self) -> None:
            pass

        def predict_chunk(self, observations):
            return np.zeros((len(observations), 2, 7), np.float32)

    return Zero()


def test_eval_runs_a_policy_on_metaworld(tmp_path):
    result = evaluate(
        _zero_policy,
        ["metaworld/mt10"],
        episodes=1,
        out=tmp_path / "eval",
        tasks=["drawer-close-v3"],
        image_size=16,
        videos=0,
        env_kwargs={"max_episode_steps": 3},
        quiet=True,
    )
    (episode,) = result.episodes
    assert episode.task == "mt10/drawer-close-v3" and episode.length == 3 and not episode.success
    assert episode.instruction == INSTRUCTIONS["drawer-close-v3"] and episode.predictions == 2


@pytest.mark.slow
def test_eval_command_takes_the_env_name(tmp_path):
    args = ["eval", "--env", "metaworld", "--suite", "mt10", "--task", "reach-v3", "--policy", "expert",
            "--episodes", "1", "--image-size", "16", "--videos", "0", "--out", str(tmp_path / "e")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "success 100.0% (1/1)" in result.output
    result = runner.invoke(app, [*args[:-2], "--perturb", "lighting:0.5", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "--perturb exist only for --env tabletop" in result.output

"""Dataset generation writes only successful expert episodes, readable by the data layer."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.sim.generate import dataset_features, generate
from vlaworks.sim.render_check import render_check


def test_generate_writes_successful_demos_with_depth(tmp_path):
    out = tmp_path / "demo"
    report = generate(["goal"], episodes=2, out=out, seed=0, image_size=32, depth=True, noise=0.1)
    r = report["suites"]["goal"]
    assert r["kept"] == 2 and r["attempts"] >= 2 and 0 < r["success_rate"] <= 1
    assert r["steps_per_s"] > 0 and report["bytes"] > 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 2
    ep = ds.episode(0)
    assert ep["observation.images.base"].shape[1:] == (32, 32, 3)
    assert ep["observation.depth.wrist"].shape[1:] == (32, 32)
    assert ep["observation.camera.base.intrinsics"].shape[1:] == (3, 3)
    assert np.abs(ep["action"]).max() <= 1.0
    assert ep["task"].startswith(("put", "pick", "stack", "lift", "push", "slide"))
    assert set(dataset_features(32, depth=False)) == {
        "observation.images.base",
        "observation.images.wrist",
        "observation.state",
        "action",
    }


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown suite"):
        generate(["kitchen"], episodes=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="episodes"):
        generate(["goal"], episodes=0, out=tmp_path / "x")
    with pytest.raises(ValueError, match="reuse another suite's seeds"):
        generate(["goal"], episodes=50_000, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_render_check_writes_a_png(tmp_path):
    from PIL import Image

    path = render_check(
        tmp_path / "check.png", suite="object", seed=1, image_size=32, perturb=["lighting:0.5"]
    )
    image = Image.open(path)
    assert image.size[0] == 3 * 32 and image.size[1] > 2 * 32


def test_demos_execute_noisy_actions_but_record_the_clean_expert_action():
    from vlaworks.envs.tabletop import TabletopEnv
    from vlaworks.sim.generate import rollout

    env = TabletopEnv("spatial", image_size=32)
    obs, _ = env.reset(seed=3)
    expert = env.expert(noise=0.3)
    expert.reset()
    clean, executed = [], []
    for _ in range(20):
        executed.append(expert.act(obs))
        clean.append(expert.clean_action.copy())
        obs, *_ = env.step(executed[-1])
    assert not np.allclose(np.stack(executed)[:, :6], np.stack(clean)[:, :6])
    frames, _ = rollout(env, seed=3, noise=0.3, depth=False)
    recorded = np.stack([f["action"] for f in frames[:20]])
    np.testing.assert_array_equal(recorded, np.stack(clean))


def test_segmentation_opt_in_records_ground_truth_and_the_target_without_depth(tmp_path):
    from vlaworks.data.layout import TARGET_SEGMENT_KEY

    out = tmp_path / "seg"
    generate(["spatial"], episodes=1, out=out, image_size=32, layout="fixed", segmentation=True)
    ds = LeRobotDataset(out)
    assert set(ds.features) >= {"observation.segmentation.base", "observation.segmentation.wrist"}
    assert not any(k.startswith(("observation.depth", "observation.camera")) for k in ds.features)
    ep = ds.episode(0)
    target = ep[TARGET_SEGMENT_KEY]
    assert target.shape == (len(ep["action"]),) and len(set(target.tolist())) == 1 and target[0] >= 2
    assert (ep["observation.segmentation.base"][0] == target[0]).any()  # the target is in view
    assert (ep["observation.segmentation.base"] == 1).any()  # the gripper is id 1

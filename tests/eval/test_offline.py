"""Open-loop action error on held-out demonstrations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vlaworks.data.lerobot import DatasetWriter, LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.eval.offline import action_error, chunk_phases
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy

SIZE, CHUNK = 32, 2
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> LeRobotDataset:
    features = {
        "observation.images.base": {"dtype": "image", "shape": [SIZE, SIZE, 3]},
        "action": {"dtype": "float32", "shape": [7]},
    }
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("offline") / "demos"
    with DatasetWriter(root, fps=10, features=features) as writer:
        for length in (5, 6):
            for _ in range(length):
                action = rng.uniform(-1, 1, 7).astype(np.float32)
                action[6] = rng.choice([-1.0, 1.0])  # a binary gripper command, as the expert's
                writer.add_frame({
                    "observation.images.base": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
                    "action": action,
                    "task": "pick the cube",
                })
            writer.save_episode()
    return LeRobotDataset(root)


@pytest.fixture(scope="module")
def policy(demos):
    config = PolicyConfig(
        backbone="prismatic-tiny",
        head=PartSpec("query_mlp", {"mlp_width": 32}),
        chunk_size=CHUNK,
        backbone_options={"image_size": SIZE, "patch_size": 16},
        cameras=("base",),
        image_size=SIZE,
        use_state=False,
    )
    return build_policy(config, Normalizer(demos.stats, mode="q99", keys=("action",)))


def test_perfect_and_inverted_predictions_score_zero_and_worst(demos, policy, monkeypatch):
    monkeypatch.setattr(policy, "predict", lambda batch: batch.actions)
    perfect = action_error(policy, demos.root, every=1, batch_size=4)
    assert perfect["translation_l1"] == 0 and perfect["rotation_l1"] == 0
    assert perfect["gripper_agreement"] == 1.0
    # every frame scored; the one chunk step past each episode's end is padding and left out
    assert perfect["frames"] == 11 and perfect["steps"] == 11 * CHUNK - 2
    phases = perfect["phases"]
    assert sum(p["frames"] for p in phases.values()) == 11
    for phase in phases.values():
        assert phase["translation_l1"] == 0 if phase["frames"] else phase["translation_l1"] is None
    monkeypatch.setattr(policy, "predict", lambda batch: -batch.actions)
    inverted = action_error(policy, demos.root, every=1, batch_size=4)
    assert inverted["gripper_agreement"] == 0.0
    assert inverted["translation_l1"] > 0.5 and inverted["rotation_l1"] > 0.5


def test_a_real_policy_scores_in_range_on_every_nth_frame(demos, policy):
    was_training = policy.training
    result = action_error(policy, demos.root, every=3)
    assert result["frames"] == math.ceil(11 / 3)
    assert 0 < result["translation_l1"] <= 2 and 0 < result["rotation_l1"] <= 2
    assert 0 <= result["gripper_agreement"] <= 1
    assert policy.training == was_training


def test_bad_arguments_are_refused(demos, policy):
    with pytest.raises(ValueError, match="every and batch_size"):
        action_error(policy, demos.root, every=0)


def test_chunk_phases_follow_the_experts_gripper_over_the_valid_steps():
    gripper = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, -1.0]])
    valid = torch.tensor([[True, True], [True, True], [True, True], [True, True], [True, False]])
    # the last chunk's open step is padding past the episode's end: it is still carrying
    assert chunk_phases(gripper, valid) == ["open", "closed", "switch", "switch", "closed"]


def test_phase_scores_split_the_mean(demos, policy, monkeypatch):
    monkeypatch.setattr(policy, "predict", lambda batch: batch.actions + 0.5 * (batch.actions[..., 6:] > 0))
    result = action_error(policy, demos.root, every=1, batch_size=4)
    phases = result["phases"]
    assert phases["open"]["translation_l1"] == 0 and phases["closed"]["translation_l1"] == pytest.approx(0.5)
    assert 0 < result["translation_l1"] < 0.5

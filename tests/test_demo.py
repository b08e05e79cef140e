"""The main job end to end at toy scale: data, training, both evaluations, report."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vlaworks.demo import DemoConfig, run_demo
from vlaworks.miniature import MINIATURE

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_reports_measured_rates(tmp_path):
    budget = replace(
        MINIATURE, steps=2, batch_size=2, eval_episodes=1, envs_per_worker=2, image_size=32, patch_size=16
    )
    cfg = DemoConfig(out=tmp_path / "demo", episodes=2, budget=budget, workers=1)
    summary = run_demo(cfg)
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["policy_success"] == summary["policy_success"]
    assert 0.0 <= summary["policy_success"] <= 1.0
    assert summary["expert_success"] == 1.0  # the scripted expert solves the held-out episodes
    report = (tmp_path / "demo" / "compare.md").read_text()
    assert "scripted expert" in report and "spatial" in report


def test_unknown_vlm_suite_or_layout_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--vlm must be one of random, pretrained"):
        DemoConfig(out=tmp_path / "demo", vlm="foo")
    with pytest.raises(ValueError, match="unknown suite 'spacial'"):
        DemoConfig(out=tmp_path / "demo", suite="spacial")
    with pytest.raises(ValueError, match="unknown layout 'rand'; choose one of random, fixed"):
        DemoConfig(out=tmp_path / "demo", layout="rand")
    assert not (tmp_path / "demo").exists()


def test_demo_records_segmentation_when_the_recipe_reads_target_masks(tmp_path, monkeypatch):
    """A <SEG> recipe gets a dataset with the world's segmentation; a dataset with it serves the
    other recipes too, while one without it is regenerated for a <SEG> recipe."""
    import vlaworks.train.pipeline as pipeline
    from vlaworks.data.layout import TARGET_SEGMENT_KEY
    from vlaworks.data.lerobot import LeRobotDataset

    class Trained(Exception):
        """Stops the demo where training would start."""

    seen: list[tuple[bool, bool]] = []

    def train(recipe, data_dir, run_dir, **kwargs):
        seen.append((TARGET_SEGMENT_KEY in LeRobotDataset(data_dir).features, kwargs["resume"]))
        raise Trained

    monkeypatch.setattr(pipeline, "train_policy", train)
    budget = replace(MINIATURE, steps=2, batch_size=2, image_size=32, patch_size=16)
    for recipe in ("vlm4vla+proprio", "pokevla+goal", "vlm4vla+proprio"):
        with pytest.raises(Trained):
            run_demo(DemoConfig(out=tmp_path / "demo", episodes=1, budget=budget, recipe=recipe))
    # plain data; regenerated with segmentation (no resume); reused as it is (resume)
    assert seen == [(False, False), (True, False), (True, True)]

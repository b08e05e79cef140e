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


def test_unknown_vlm_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--vlm must be one of random, pretrained"):
        DemoConfig(out=tmp_path / "demo", vlm="foo")
    assert not (tmp_path / "demo").exists()

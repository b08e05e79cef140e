"""The command line end to end on a tiny world: generate -> train -> resume -> eval."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from vlaworks.cli import app
from vlaworks.models.checkpoint import load_policy

pytestmark = pytest.mark.slow
runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "data"
    _ok(["generate", "--suite", "spatial", "--episodes", "2", "--out", str(out), "--image-size", "32"])
    return out


def test_train_writes_a_loadable_policy_and_resumes(dataset, tmp_path):
    run = tmp_path / "run"
    common = ["train", "--recipe", "vlm4vla", "--data", str(dataset), "--out", str(run),
              "--backbone", "prismatic-tiny", "--image-size", "32", "--cameras", "base,wrist",
              "--batch-size", "2", "--save-every", "2", "--set", "policy.chunk_size=4",
              "--set", "train.log_every=1"]
    out = _ok([*common, "--steps", "2"])
    assert "trained vlm4vla for 2 steps" in out
    policy = load_policy(run)
    assert policy.config.cameras == ("base", "wrist") and policy.config.chunk_size == 4
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["policy"]["image_size"] == 32
    # same command, more steps: resumes from step 2 rather than starting again
    _ok([*common, "--steps", "4"])
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]


def test_a_run_without_checkpoints_is_evaluated_and_probed(dataset, tmp_path):
    """``--save-every 0`` leaves only RUN/policy; eval and probe both read it."""
    run = tmp_path / "run"
    _ok(["train", "--recipe", "vlm4vla", "--data", str(dataset), "--out", str(run), "--image-size", "32",
         "--cameras", "base", "--batch-size", "2", "--steps", "1", "--save-every", "0",
         "--set", "policy.chunk_size=4"])
    assert not (run / "checkpoints").exists()
    out = _ok(["eval", "--policy", str(run), "--suite", "spatial", "--episodes", "1", "--image-size", "32",
               "--out", str(tmp_path / "ev"), "--task", "pick_leftmost_place_bowl", "--videos", "0"])
    assert "success" in out
    evaluated = json.loads((tmp_path / "ev" / "results.json").read_text())["policy"]
    assert evaluated == str((run / "policy").resolve())
    out = _ok(["probe", "--policy", str(run), "--out", str(tmp_path / "probe"), "--n-train", "8",
               "--n-test", "4", "--vqa", "2", "--image-size", "32"])
    assert "# Linear probe of vision features" in out and "| kind |" in out and "VQA accuracy" in out


def test_train_rejects_unknown_recipe_and_freeze(dataset, tmp_path):
    result = runner.invoke(app, ["train", "--recipe", "nope", "--data", str(dataset), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "error: Unknown recipe 'nope'; known: bc-cnn" in result.output
    result = runner.invoke(
        app, ["train", "--recipe", "vlm4vla", "--data", str(dataset), "--out", str(tmp_path), "--freeze", "x"]
    )
    assert result.exit_code != 0 and "--freeze" in result.output


def test_help_shows_defaults_and_bracketed_syntax():
    """Rich reads ``[default: x]`` and ``[@CALIBRATION]`` as markup tags and drops them; the help
    must still show the demo's defaults and the --perturb syntax."""
    demo = " ".join(runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "Task suite (default: spatial)" in demo and "Expert demonstrations (default: 120)" in demo
    evaluate = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "250"}).output
    assert "FAMILY[@CALIBRATION]:SEVERITY" in evaluate


def test_eval_expert_prints_success_and_writes_report(tmp_path):
    out = _ok(["eval", "--policy", "expert", "--suite", "spatial", "--episodes", "1", "--out",
               str(tmp_path), "--image-size", "32", "--task", "pick_leftmost_place_bowl", "--videos", "0"])
    assert re.search(r"success 100\.0% \(1/1\)", out)
    assert (tmp_path / "report.md").exists() and (tmp_path / "results.json").exists()


def test_train_cotraining_recipe_mixes_robot_and_vl_batches(dataset, tmp_path):
    run = tmp_path / "run"
    _ok(["train", "--recipe", "openvla+", "--data", str(dataset), "--out", str(run),
         "--image-size", "32", "--cameras", "base", "--batch-size", "2", "--steps", "6",
         "--set", "cotrain.vl_samples=8", "--set", "train.log_every=1"])
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    assert "vl_ce" in columns and len(rows) == 6
    assert (run / "vl_cotrain.npz").exists()
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["cotrain"]["vl_samples"] == 8 and recipe["cotrain"]["vl_fraction"] == 0.5
    policy = load_policy(run)
    assert policy.config.head.type == "token"


def test_compare_passes_shared_overrides_and_refuses_budget_overrides(dataset, tmp_path):
    out = tmp_path / "cmp"
    bad = runner.invoke(app, ["compare", "--recipe", "vlm4vla", "--data", str(dataset), "--suite", "spatial",
                              "--out", str(out), "--set", "train.steps=9"])
    assert bad.exit_code != 0 and "fixes the training budget" in bad.output
    text = _ok(["compare", "--recipe", "vlm4vla", "--data", str(dataset), "--suite", "spatial",
                "--out", str(out), "--condition", "clean", "--image-size", "32", "--patch-size", "16",
                "--chunk", "2", "--steps", "1", "--batch-size", "2", "--episodes", "1",
                "--task", "pick_leftmost_place_bowl", "--envs-per-worker", "1",
                "--set", "policy.backbone_options.dual_encoder=true"])
    assert "| vlm4vla |" in text
    recipe = json.loads((out / "runs" / "vlm4vla" / "recipe.json").read_text())
    assert recipe["policy"]["backbone_options"]["dual_encoder"] is True


def test_fast_finetuning_hands_its_vlm_to_vla_training(dataset, tmp_path):
    """Seed 003 Table 4: FAST action-token fine-tuning of the VLM, then VLM4VLA on that VLM."""
    import torch

    from vlaworks.models.backbones import build_backbone

    small = ["--data", str(dataset), "--image-size", "32", "--batch-size", "2"]
    fast_run, vlm = tmp_path / "fast", tmp_path / "vlm"
    # the tiny LM's vocabulary (458 ids) holds a 128-token FAST vocabulary, not the paper's 1024
    _ok(["train", "--recipe", "vlm-fast-freeze-vision", *small, "--backbone", "prismatic-tiny",
         "--out", str(fast_run), "--steps", "2", "--set", "policy.chunk_size=4",
         "--set", "policy.head.options.vocab_size=128"])
    fit = json.loads((fast_run / "tokenizer_fit.json").read_text())
    assert fit["mean_abs_error"] > 0 and fit["tokens_per_chunk"] >= 1
    fast = load_policy(fast_run)
    assert fast.config.head.options["tokenizer"] == "fast" and fast.config.freeze_vision
    assert "backbone at" in _ok(["export-backbone", "--policy", str(fast_run), "--out", str(vlm)])
    exported = build_backbone(str(vlm)).state_dict()
    trained = fast.backbone.state_dict()
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)
    # VLA training on the injected VLM with its vision encoder frozen keeps that encoder as exported
    vla_run = tmp_path / "vla"
    _ok(["train", "--recipe", "vlm4vla", *small, "--backbone", str(vlm), "--out", str(vla_run),
         "--steps", "1", "--freeze", "vision"])
    vla = load_policy(vla_run).backbone.state_dict()
    vision = [k for k in trained if k.startswith("featurizer.")]
    assert vision and all(torch.equal(vla[k], trained[k]) for k in vision)


def test_export_backbone_refuses_a_dual_encoder_policy(dataset, tmp_path):
    run = tmp_path / "dual"
    _ok(["train", "--recipe", "openvla+D", "--data", str(dataset), "--out", str(run), "--image-size", "32",
         "--batch-size", "2", "--steps", "1"])
    result = runner.invoke(app, ["export-backbone", "--policy", str(run), "--out", str(tmp_path / "vlm")])
    assert result.exit_code == 2 and "dual vision encoder" in result.output


def test_pretrain_and_train_from_the_cached_vlm(dataset, tmp_path, monkeypatch):
    from vlaworks.miniature import MINIATURE
    from vlaworks.models.backbones import build_backbone
    from vlaworks.train.pretrain import CACHE_ENV, PretrainSettings

    text = _ok(["pretrain", "--out", str(tmp_path / "pre"), "--samples", "8", "--steps", "1",
                "--batch-size", "4", "--image-size", "32", "--patch-size", "16", "--token-merge", "1",
                "--grounding", "3", "--mix", "grounding=1,affordance=1"])
    assert "| metric | random init | pretrained |" in text and (tmp_path / "pre" / "vlm").is_dir()
    bad = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "x"), "--mix", "vision=1"])
    assert bad.exit_code != 0 and "CATEGORY=WEIGHT" in bad.output
    # a cache entry for the default settings on the demo's architecture: train --vlm pretrained finds it
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    entry = tmp_path / "cache" / PretrainSettings.for_budget(MINIATURE).key() / "vlm"
    options = {"image_size": MINIATURE.image_size, "patch_size": MINIATURE.patch_size,
               "token_merge": MINIATURE.token_merge}
    build_backbone("prismatic-tiny", **options).save_pretrained(str(entry))
    run = tmp_path / "run"
    _ok(["train", "--recipe", "vlm4vla", "--backbone", "prismatic-tiny", "--data", str(dataset), "--out",
         str(run), "--vlm", "pretrained", "--image-size", "32", "--batch-size", "2", "--steps", "1",
         "--set", "policy.chunk_size=2"])
    assert json.loads((run / "recipe.json").read_text())["policy"]["backbone"] == str(entry)

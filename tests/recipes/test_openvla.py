"""OpenVLA and seed 004 D / S / C recipes on prismatic-tiny; co-training source; FAST fitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlaworks.batch import Batch
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import DatasetWriter, LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.data.vl import VLDataset
from vlaworks.models.config import PartSpec
from vlaworks.models.policy import build_policy
from vlaworks.models.vision.dual import is_dual
from vlaworks.processing import PolicyProcessor, collate
from vlaworks.recipes import get_recipe
from vlaworks.recipes.training import action_chunks, prepare_policy, training_source

SIZE = 32
CHUNK = 2
NAMES = ("openvla", "openvla+D", "openvla+S", "openvla+C", "openvla+DS", "openvla+SC", "openvla+")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name: str, **options):
    return get_recipe(name, image_size=SIZE, chunk=CHUNK, backbone_options={"image_size": SIZE}, **options)


def robot_batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.randint(0, 256, (2, 1, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
        instructions=["pick up the red cube", "put the cube in the bowl"],
        actions=torch.rand((2, CHUNK, 7), generator=g) * 2 - 1,
    )


def vl_batch() -> Batch:
    data = VLDataset(
        np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8),
        ["Point to the red cube.", "How many cubes are on the table?"],
        ["(0.25, 0.50)", "2"],
    )
    return collate([data[0], data[1]])


@pytest.mark.parametrize("name", NAMES)
def test_recipe_builds_and_trains_one_step(name: str) -> None:
    torch.manual_seed(0)
    recipe = tiny(name)
    assert recipe.name == name
    letters = name.removeprefix("openvla").removeprefix("+") or ""
    letters = "DSC" if name == "openvla+" else letters
    assert bool(recipe.cotrain) == ("C" in letters)
    assert recipe.policy.head.options["tokenizer"] == ("string" if "S" in letters else "bins")
    policy = build_policy(recipe.policy)
    assert is_dual(policy.backbone) == ("D" in letters)
    policy.train()
    batches = [robot_batch(), *([vl_batch()] if "C" in letters else [])]
    for batch in batches:
        policy.zero_grad()
        loss, metrics = policy(batch)
        assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(loss.item())
        loss.backward()
        assert policy.backbone.input_embeddings().weight.grad is not None


@pytest.mark.parametrize("name", ["openvla", "openvla+S"])
def test_token_recipes_predict_well_formed_chunks(name: str) -> None:
    torch.manual_seed(0)
    policy = build_policy(tiny(name).policy).eval()
    chunk = policy.predict(robot_batch())
    assert chunk.shape == (2, CHUNK, 7)
    assert torch.isfinite(chunk).all() and chunk.abs().max() <= 1.0


def test_string_head_learns_a_fixed_chunk() -> None:
    """A few steps on one string-token target make greedy decoding reproduce it (4 decimals)."""
    torch.manual_seed(0)
    recipe = get_recipe("openvla+S", image_size=SIZE, chunk=1, backbone_options={"image_size": SIZE})
    policy = build_policy(recipe.policy)
    batch = Batch(
        images=torch.zeros((1, 1, 3, SIZE, SIZE), dtype=torch.uint8),
        instructions=["pick up the cube"],
        actions=torch.full((1, 1, 7), 0.5),
    )
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(25):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    assert torch.allclose(policy.predict(batch), batch.actions, atol=1e-4)


def test_recipe_cotrain_field_validates_and_overrides() -> None:
    recipe = tiny("openvla+")
    assert recipe.cotrain["vl_fraction"] == 0.5
    assert recipe.to_dict()["cotrain"] == recipe.cotrain
    assert recipe.override({"cotrain.vl_fraction": 0.25}).cotrain["vl_fraction"] == 0.25
    with pytest.raises(ValueError, match="vl_fraction"):
        recipe.override({"cotrain.vl_fraction": 1.5})
    with pytest.raises(KeyError, match="Unknown cotrain"):
        recipe.override({"cotrain.ratio": 0.5})
    assert tiny("openvla").cotrain == {}


def test_training_source_mixes_vl_batches_at_the_recipe_fraction() -> None:
    robot = [{"images": torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), "instruction": "go",
              "actions": torch.zeros(CHUNK, 7), "action_mask": torch.ones(CHUNK, dtype=torch.bool),
              "episode_index": 0, "frame_index": i, "camera_names": ("base",)} for i in range(4)]
    vl = VLDataset(np.zeros((4, SIZE, SIZE, 3), np.uint8), ["q"] * 4, ["a"] * 4)
    mixed = training_source(tiny("openvla+C"), robot, collate, 2, vl=vl)
    kinds = [name for name, _ in (next(iter(mixed)) for _ in range(200))]
    assert 0.35 < kinds.count("vl") / len(kinds) < 0.65
    name, batch = next(iter(mixed))
    assert batch.is_vl == (name == "vl")
    plain = training_source(tiny("openvla"), robot, collate, 2)
    assert plain.names == ("robot",)
    with pytest.raises(ValueError, match="does not co-train"):
        training_source(tiny("openvla"), robot, collate, 2, vl=vl)
    wrist = VLDataset(np.zeros((4, SIZE, SIZE, 3), np.uint8), ["q"] * 4, ["a"] * 4, cameras=("base", "wrist"))
    with pytest.raises(ValueError, match="cameras"):
        training_source(tiny("openvla+C"), robot, collate, 2, vl=wrist)


def write_robot_dataset(root: Path) -> LeRobotDataset:
    features = {
        "observation.images.base": {"dtype": "image", "shape": [SIZE, SIZE, 3]},
        "action": {"dtype": "float32", "shape": [7]},
    }
    rng = np.random.default_rng(0)
    with DatasetWriter(root, fps=10, features=features) as writer:
        for episode in range(2):
            for _ in range(5 + episode):
                writer.add_frame({
                    "observation.images.base": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
                    "action": rng.uniform(-1, 1, 7).astype(np.float32),
                    "task": "pick the cube",
                })
            writer.save_episode()
    return LeRobotDataset(root)


def test_prepare_fits_a_fast_head_on_the_window_chunks(tmp_path: Path) -> None:
    ds = write_robot_dataset(tmp_path / "ds")
    normalizer = Normalizer(ds.stats, mode="q99", keys=("action",))
    windows = WindowDataset(ds, PolicyProcessor(("base",), chunk_size=CHUNK, normalizer=normalizer))
    chunks = action_chunks(windows)
    assert chunks.shape == (11, CHUNK, 7)
    item = windows[3]
    assert any(np.allclose(c, item["actions"].numpy()) for c in chunks)
    recipe = tiny("openvla").override({"policy.head": {"type": "token", "options": {"tokenizer": "fast"}}})
    assert recipe.policy.head == PartSpec("token", {"tokenizer": "fast"})
    policy = build_policy(recipe.policy, normalizer)
    report = prepare_policy(policy, windows)
    assert report["chunks"] == len(chunks) and report["vocab_size"] == policy.head.tokenizer.n_symbols
    # DCT quantisation at scale 10 codes each coefficient to within 0.05: a small, non-zero error
    assert 0 < report["mean_abs_error"] <= report["max_abs_error"] < 0.5
    assert 1 <= report["tokens_per_chunk"] <= CHUNK * 7
    loss, _ = policy(collate([windows[0], windows[1]]))
    assert torch.isfinite(loss)
    bins = build_policy(tiny("openvla").policy, normalizer)
    assert prepare_policy(bins, windows) is None


def test_cotraining_runs_through_the_trainer_and_resumes(tmp_path: Path) -> None:
    from vlaworks.models.checkpoint import load_policy, write_policy_files
    from vlaworks.train.trainer import train

    ds = write_robot_dataset(tmp_path / "ds")
    recipe = tiny("openvla+", vl_samples=4)
    normalizer = Normalizer(ds.stats, mode="q99", keys=("action",))
    windows = WindowDataset(ds, PolicyProcessor.from_config(recipe.policy, normalizer))
    vl = VLDataset(np.zeros((4, SIZE, SIZE, 3), np.uint8), ["Point to the cube."] * 4, ["(0.50, 0.50)"] * 4)
    run = {"batch_size": 2, "save_every": 2, "log_every": 1, "progress": False}
    cfg = recipe.train_config(tmp_path / "run", steps=4, **run)
    policy = build_policy(recipe.policy, normalizer)
    source = training_source(recipe, windows, collate, cfg.batch_size, seed=cfg.seed, vl=vl)
    result = train(policy, source, None, cfg, extra_save=lambda folder: write_policy_files(policy, folder))
    assert len(result.losses) == 4 and all(np.isfinite(result.losses))
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "vl_ce" in header and "token_ce" in header
    loaded = load_policy(tmp_path / "run" / "checkpoints" / "latest")
    assert loaded.predict(collate([windows[0]])).shape == (1, CHUNK, 7)
    more = recipe.train_config(tmp_path / "run", steps=6, **run)
    source = training_source(recipe, windows, collate, 2, seed=more.seed, vl=vl)
    assert len(train(build_policy(recipe.policy, normalizer), source, None, more, resume=True).losses) == 2


def test_export_policy_sets_the_token_decoding(tmp_path: Path) -> None:
    """`export-policy --decoding` rewrites how a token head decodes (same weights); a decoding
    the tokenizer cannot use is a one-line error."""
    from typer.testing import CliRunner

    from vlaworks.cli import app
    from vlaworks.models.checkpoint import load_policy, save_policy

    stats = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [-1.0] * 7, "max": [1.0] * 7}}
    normalizer = Normalizer(stats, mode="q99", keys=("action",))
    for name in ("openvla", "openvla+S"):
        torch.manual_seed(0)
        save_policy(build_policy(tiny(name).policy, normalizer).eval(), tmp_path / name)
    out = tmp_path / "mean"
    result = CliRunner().invoke(
        app, ["export-policy", "--policy", str(tmp_path / "openvla"), "--out", str(out), "--decoding", "mean"]
    )
    assert result.exit_code == 0, result.output
    exported, original = load_policy(out), load_policy(tmp_path / "openvla")
    assert exported.head.decoding == "mean" and exported.config.head.options["decoding"] == "mean"
    assert original.head.decoding == "greedy"
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in exported.state_dict().items())
    refused = CliRunner().invoke(
        app, ["export-policy", "--policy", str(tmp_path / "openvla+S"), "--out", str(tmp_path / "s"),
              "--decoding", "mean"]
    )
    assert refused.exit_code == 2 and "needs bin tokens" in refused.output
    assert not (tmp_path / "s").exists()

"""Policy checkpoints: save -> load gives identical actions; mismatched stats are errors; one
resolver turns a policy or run folder into the policy every command loads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vlaworks.eval.workers import resolve_policy_spec
from vlaworks.models.checkpoint import load_policy, resolve_policy_folder, save_policy, verify_policy_folder
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy
from vlaworks.safefiles import CheckpointError

pytestmark = pytest.mark.usefixtures("fake_backbones")


def _config(**overrides) -> PolicyConfig:
    base = dict(
        backbone="fake",
        backbone_options={"hidden": 32},
        head=PartSpec("query_mlp", {"mlp_width": 16}),
        chunk_size=2,
        image_size=16,
        cameras=("base", "wrist"),
    )
    base.update(overrides)
    return PolicyConfig(**base)


def _observations() -> list[dict]:
    rng = np.random.default_rng(3)
    return [
        {
            "images": {c: rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for c in ("base", "wrist")},
            "state": rng.standard_normal(8).astype(np.float32),
            "instruction": text,
        }
        for text in ("pick up the cube", "open the drawer")
    ]


def _perturb(policy) -> None:
    """Move every weight away from its seeded init, so a load that skips weights would show."""
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"lora": LoraOptions(enabled=True, r=2, alpha=4)},
        {"use_state": True, "state_dim": 8, "token_sources": [PartSpec("proprio")], "from_scratch": True},
    ],
    ids=["full", "lora", "proprio-scratch"],
)
def test_save_load_gives_identical_actions(tmp_path, normalizer, overrides) -> None:
    policy = build_policy(_config(**overrides), normalizer).eval()
    _perturb(policy)
    before = policy.predict_chunk(_observations())
    folder = save_policy(policy, tmp_path / "ckpt")
    assert {"config.json", "model.safetensors", "normalizer.json"} <= {p.name for p in folder.iterdir()}
    loaded = load_policy(folder)
    np.testing.assert_array_equal(loaded.predict_chunk(_observations()), before)
    assert loaded.config == policy.config
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in policy.parameters()]


def test_expected_stats_must_match(tmp_path, normalizer, stats) -> None:
    folder = save_policy(build_policy(_config(), normalizer), tmp_path / "ckpt")
    load_policy(folder, expected_stats=stats)  # same keys and shapes: fine
    other = json.loads(json.dumps(stats))
    other["action"] = {k: v[:6] for k, v in stats["action"].items()}
    with pytest.raises(ValueError, match="'action' has 6 dimensions"):
        load_policy(folder, expected_stats=other)
    del other["observation.state"]
    with pytest.raises(ValueError, match="missing key 'observation.state'"):
        load_policy(folder, expected_stats=other)


def test_weights_must_match_config(tmp_path, normalizer) -> None:
    folder = save_policy(build_policy(_config(), normalizer), tmp_path / "ckpt")
    _config(head=PartSpec("query_mlp", {"mlp_width": 8})).save(folder / "config.json")
    with pytest.raises(RuntimeError, match="size mismatch for head.mlp"):
        load_policy(folder)


def test_save_without_normaliser_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="normaliser"):
        save_policy(build_policy(_config()), tmp_path / "ckpt")


def test_not_a_checkpoint_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_policy(tmp_path)


def test_truncated_or_corrupt_files_are_named(tmp_path, normalizer) -> None:
    folder = save_policy(build_policy(_config(), normalizer), tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(CheckpointError, match=r"ckpt/model.safetensors is truncated or corrupt"):
        load_policy(folder)
    weights.write_bytes(intact)
    state = json.loads((folder / "normalizer.json").read_text())
    state["stats"]["action"]["q01"][0] = float("nan")
    (folder / "normalizer.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"normalizer.json cannot be used: .*q01 is NaN or inf at dims"):
        verify_policy_folder(folder)
    (folder / "config.json").write_text('{"backbone": ')
    with pytest.raises(CheckpointError, match="config.json is truncated or corrupt"):
        load_policy(folder)


def test_saving_over_a_policy_swaps_it_in_whole(tmp_path, normalizer) -> None:
    first = build_policy(_config(), normalizer)
    save_policy(first, tmp_path / "ckpt")
    second = build_policy(_config(), normalizer)
    _perturb(second)
    save_policy(second, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    loaded = load_policy(tmp_path / "ckpt").state_dict()
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in loaded.items())


def test_processor_is_saved_and_must_agree_with_the_config(tmp_path, normalizer) -> None:
    from vlaworks.processing import PolicyProcessor

    policy = build_policy(_config(use_state=True, state_dim=8), normalizer)
    folder = save_policy(policy, tmp_path / "policy")
    saved = json.loads((folder / "processor.json").read_text())
    assert saved == {"cameras": ["base", "wrist"], "image_size": 16, "chunk_size": 2, "use_state": True,
                     "augment": None}
    client = PolicyProcessor.from_dict(saved, load_policy(folder).normalizer)
    batch = client.batch(_observations())
    assert torch.equal(batch.images, policy.processor.batch(_observations()).images)
    (folder / "processor.json").write_text(json.dumps({**saved, "image_size": 32}))
    with pytest.raises(CheckpointError, match="processor.json disagrees"):
        load_policy(folder)


# -- one resolver for every command -----------------------------------------------------------


def _run(root: Path, normalizer, *, final: bool, steps: tuple[int, ...]) -> Path:
    """A run folder as training leaves it: ``RUN/policy`` when ``final`` (``--save-every 0``
    writes only that) and trainer checkpoints ``step-N`` with ``latest`` at the last; every
    folder holds other weights, so a load shows which one it read."""
    run = root / "run"
    folders = ([run / "policy"] if final else []) + [run / "checkpoints" / f"step-{s:06d}" for s in steps]
    for folder in folders:
        policy = build_policy(_config(), normalizer)
        _perturb(policy)
        save_policy(policy, folder)
    if steps:
        (run / "checkpoints" / "latest").symlink_to(f"step-{steps[-1]:06d}")
    return run


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


@pytest.mark.parametrize(
    ("final", "steps", "expected"),
    [
        (True, (), "policy"),  # --save-every 0
        (False, (2, 4), "checkpoints/step-000004"),  # killed before the end: the latest checkpoint
        (True, (2, 4), "policy"),  # finished: the final policy
    ],
    ids=["policy-only", "checkpoints-only", "both"],
)
def test_eval_and_probe_resolve_a_run_to_the_same_policy(tmp_path, normalizer, final, steps, expected):
    run = _run(tmp_path, normalizer, final=final, steps=steps)
    folder = (run / expected).resolve()
    assert resolve_policy_folder(run) == folder
    assert resolve_policy_spec(str(run)) == str(folder)  # what `vlaworks eval` runs
    loaded = load_policy(run).state_dict()  # what `vlaworks probe`, VQA, offline error, export read
    saved = load_policy(folder).state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in loaded.items())
    assert resolve_policy_folder(run / expected) == folder  # a policy folder names itself


def test_a_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path, normalizer, caplog) -> None:
    run = _run(tmp_path, normalizer, final=False, steps=(2, 4))
    _truncate(run / "checkpoints" / "step-000004")
    with caplog.at_level(logging.WARNING, logger="vlaworks"):
        assert resolve_policy_folder(run) == (run / "checkpoints" / "step-000002").resolve()
    assert "step-000004/model.safetensors is truncated or corrupt" in caplog.text
    assert "step-000002" in caplog.text
    assert (run / "checkpoints" / "step-000004").is_dir()  # resolving only reads


def test_a_damaged_final_policy_falls_back_to_the_latest_checkpoint(tmp_path, normalizer) -> None:
    run = _run(tmp_path, normalizer, final=True, steps=(2, 4))
    _truncate(run / "policy")
    assert resolve_policy_folder(run) == (run / "checkpoints" / "step-000004").resolve()


def test_no_usable_policy_is_one_clear_error(tmp_path, normalizer) -> None:
    with pytest.raises(FileNotFoundError, match=r"No policy at .*: it is neither a policy folder"):
        resolve_policy_folder(tmp_path)
    run = _run(tmp_path, normalizer, final=True, steps=(2,))
    for folder in (run / "policy", run / "checkpoints" / "step-000002"):
        _truncate(folder)
    with pytest.raises(CheckpointError, match=r"No usable policy in .*run: .*policy/model.safetensors"):
        resolve_policy_folder(run)
    with pytest.raises(CheckpointError, match="policy/model.safetensors is truncated"):
        resolve_policy_folder(run / "policy")  # named directly: no fall-back


def test_load_policy_passes_a_built_model_through(normalizer) -> None:
    policy = build_policy(_config(), normalizer)
    assert load_policy(policy) is policy
    assert load_policy(policy.backbone) is policy.backbone


def test_processor_file_from_before_a_new_setting_still_loads(tmp_path, normalizer) -> None:
    config = _config()
    config.augment.shift = 4
    folder = save_policy(build_policy(config, normalizer), tmp_path / "policy")
    saved = json.loads((folder / "processor.json").read_text())
    del saved["augment"]["instructions"]  # written before instruction augmentation existed
    (folder / "processor.json").write_text(json.dumps(saved))
    assert load_policy(folder).processor.augment.shift == 4
    (folder / "processor.json").write_text(json.dumps({**saved, "bogus": 1}))
    with pytest.raises(CheckpointError, match="Unknown processor setting"):
        load_policy(folder)

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.safefiles import CheckpointError
from vlaworks.train import config as config_module
from vlaworks.train import trainer as trainer_module
from vlaworks.train.checkpoint import latest_checkpoint, list_checkpoints
from vlaworks.train.config import TrainConfig
from vlaworks.train.sampler import MixedBatchSource
from vlaworks.train.smoke import collate_vl, collate_windows
from vlaworks.train.trainer import train


class _Killed(RuntimeError):
    pass


class _DiesAfter(nn.Module):
    """Wraps a model and raises after ``calls`` forwards: a run killed mid-training."""

    def __init__(self, inner: nn.Module, calls: int) -> None:
        super().__init__()
        self.inner = inner
        self.calls = calls

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if self.calls == 0:
            raise _Killed("simulated kill")
        self.calls -= 1
        return self.inner(batch)

    def state_dict(self, *args, **kwargs):  # checkpoint keys must match an unwrapped model
        return self.inner.state_dict(*args, **kwargs)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _without_timing(path: Path) -> list[dict[str, str]]:
    """CSV rows without samples_per_s, the wall-clock column (the only one allowed to differ)."""
    return [{k: v for k, v in row.items() if k != "samples_per_s"} for row in _read_csv(path)]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_reproduces_uninterrupted_run(windows, make_model, make_cfg, num_workers):
    straight_cfg = make_cfg("straight", grad_accum=2, num_workers=num_workers)
    straight = train(make_model(0), windows, collate_windows, straight_cfg)
    assert len(straight.losses) == 6

    cfg = make_cfg("resumed", grad_accum=2, num_workers=num_workers)
    with pytest.raises(_Killed):
        train(_DiesAfter(make_model(0), calls=4 * 2 + 1), windows, collate_windows, cfg)
    assert latest_checkpoint(cfg.out_dir / "checkpoints").name == "step-000003"

    torch.manual_seed(12345)  # a new process would have different RNG states and weights
    resumed = train(make_model(7), windows, collate_windows, cfg, resume=True)
    assert len(resumed.losses) == 3
    assert resumed.losses == pytest.approx(straight.losses[3:], abs=1e-6)
    straight_rows = _read_csv(straight_cfg.out_dir / "metrics.csv")
    resumed_rows = _read_csv(cfg.out_dir / "metrics.csv")  # step-4 row of the killed run is dropped
    assert [r["step"] for r in resumed_rows] == [str(s) for s in range(1, 7)]
    for a, b in zip(straight_rows, resumed_rows, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=1e-6)
        assert float(a["lr"]) == pytest.approx(float(b["lr"]), abs=1e-12)


def test_resumed_csv_rows_average_the_same_steps(windows, make_model, make_cfg):
    """A row logged after a resume averages the steps before the checkpoint too."""
    straight_cfg = make_cfg("straight", steps=6, save_every=3, log_every=2)
    straight = train(make_model(0), windows, collate_windows, straight_cfg)
    cfg = make_cfg("resumed", steps=6, save_every=3, log_every=2)
    with pytest.raises(_Killed):
        train(_DiesAfter(make_model(0), calls=5), windows, collate_windows, cfg)
    resumed = train(make_model(7), windows, collate_windows, cfg, resume=True)
    assert resumed.start_step == 3 and resumed.losses == straight.losses[3:]
    rows, expected = (_without_timing(c.out_dir / "metrics.csv") for c in (cfg, straight_cfg))
    assert [r["step"] for r in rows] == ["2", "4", "6"] and rows == expected


def test_rerunning_a_finished_run_reports_its_final_loss(windows, make_model, make_cfg):
    cfg = make_cfg(steps=3, save_every=3)
    first = train(make_model(0), windows, collate_windows, cfg)
    again = train(make_model(0), windows, collate_windows, cfg, resume=True)
    assert again.start_step == 3 and again.losses == [] and again.final_loss == first.final_loss
    assert math.isnan(again.samples_per_s)


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(windows, make_model, make_cfg, caplog):
    straight = train(make_model(0), windows, collate_windows, make_cfg("straight", steps=6, save_every=3))
    cfg = make_cfg("damaged", steps=6, save_every=3)
    train(make_model(0), windows, collate_windows, cfg)
    root = cfg.out_dir / "checkpoints"
    weights = root / "step-000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    resumed = train(make_model(7), windows, collate_windows, cfg, resume=True)
    assert "step-000006/model.safetensors is truncated or corrupt" in caplog.text
    assert "Resuming from" in caplog.text and "step-000003" in caplog.text
    assert resumed.start_step == 3 and resumed.losses == straight.losses[3:]
    assert (root / "step-000006.corrupt").is_dir() and latest_checkpoint(root).name == "step-000006"


def test_no_intact_checkpoint_is_an_error_naming_the_file(windows, make_model, make_cfg):
    cfg = make_cfg(steps=3, save_every=3)
    train(make_model(0), windows, collate_windows, cfg)
    (cfg.out_dir / "checkpoints" / "step-000003" / "optimizer.pt").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(CheckpointError, match=r"step-000003/optimizer.pt is truncated or corrupt.*--fresh"):
        train(make_model(0), windows, collate_windows, cfg, resume=True)
    assert (cfg.out_dir / "checkpoints" / "step-000003").is_dir()  # kept as it was


def test_loss_decreases_and_result_fields(windows, make_model, make_cfg):
    cfg = make_cfg(steps=12, save_every=0, weight_decay=0.0)
    result = train(make_model(), windows, collate_windows, cfg)
    assert result.steps == 12 and result.last_checkpoint is None
    assert result.final_loss == result.losses[-1]
    assert sum(result.losses[-3:]) < sum(result.losses[:3])
    assert result.samples_per_s > 0


def test_crash_during_save_keeps_previous_checkpoint(windows, make_model, make_cfg):
    cfg = make_cfg(steps=4, save_every=2)
    saves = []

    def extra_save(path: Path) -> None:
        saves.append(path.name)
        (path / "policy_config.json").write_text("{}")
        if len(saves) == 2:
            raise OSError("disk full while writing the second checkpoint")

    with pytest.raises(OSError, match="disk full"):
        train(make_model(), windows, collate_windows, cfg, extra_save=extra_save)
    root = cfg.out_dir / "checkpoints"
    latest = latest_checkpoint(root)
    assert latest is not None and latest.name == "step-000002"
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json", "policy_config.json"} <= {
        p.name for p in latest.iterdir()
    }
    assert [p.name for p in list_checkpoints(root)] == ["step-000002"]

    result = train(make_model(), windows, collate_windows, cfg, resume=True, extra_save=extra_save)
    assert len(result.losses) == 2
    assert result.last_checkpoint == root / "step-000004"
    assert latest_checkpoint(root).name == "step-000004"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_keep_last_prunes_old_checkpoints(windows, make_model, make_cfg):
    cfg = make_cfg(steps=5, save_every=1, keep_last=2)
    result = train(make_model(), windows, collate_windows, cfg)
    root = cfg.out_dir / "checkpoints"
    assert [p.name for p in list_checkpoints(root)] == ["step-000004", "step-000005"]
    assert result.last_checkpoint == root / "step-000005"
    assert (root / "latest").resolve() == root / "step-000005"


def test_frozen_parameters_do_not_change(windows, make_model, make_cfg):
    model = make_model()
    stem_before = model.stem.weight.clone()
    head_before = model.action_head.weight.clone()
    train(model, windows, collate_windows, make_cfg(steps=3, save_every=0))
    assert torch.equal(model.stem.weight, stem_before)
    assert not torch.equal(model.action_head.weight, head_before)


def test_metrics_csv_columns_and_log_every(windows, make_model, make_cfg):
    cfg = make_cfg(steps=4, log_every=2, save_every=0)
    train(make_model(), windows, collate_windows, cfg)
    rows = _read_csv(cfg.out_dir / "metrics.csv")
    assert list(rows[0]) == ["step", "loss", "lr", "samples_per_s", "l1", "grad_norm"]
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["samples_per_s"]) > 0 and math.isfinite(float(r["loss"])) for r in rows)
    assert TrainConfig.from_dict(json.loads((cfg.out_dir / "train_config.json").read_text())) == cfg


def test_lr_follows_warmup_then_cosine(windows, make_model, make_cfg):
    cfg = make_cfg(steps=8, warmup_steps=3, lr=0.1, save_every=0)
    train(make_model(), windows, collate_windows, cfg)
    lrs = [float(r["lr"]) for r in _read_csv(cfg.out_dir / "metrics.csv")]
    assert lrs[:4] == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1])
    assert all(a > b for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert lrs[-1] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_cotraining_logs_both_sources(windows, vl_data, make_model, make_cfg):
    cfg = make_cfg(steps=8, save_every=4)
    source = MixedBatchSource(
        {"robot": (windows, collate_windows), "vl": (vl_data, collate_vl)}, batch_size=4, seed=cfg.seed
    )
    train(make_model(), source, None, cfg)
    columns = list(_read_csv(cfg.out_dir / "metrics.csv")[0])
    assert {"l1", "vl_loss"} <= set(columns)
    state = json.loads((cfg.out_dir / "checkpoints/latest/trainer_state.json").read_text())
    assert state["sampler"]["draws"] == 8
    assert sum(state["sampler"]["positions"].values()) == 8 * 4


def test_bf16_mixed_precision_runs(windows, make_model, make_cfg):
    cfg = make_cfg(steps=2, save_every=0, mixed_precision="bf16")
    result = train(make_model(), windows, collate_windows, cfg)
    assert all(math.isfinite(x) for x in result.losses)


@pytest.mark.parametrize("machine", ["bf16", "no"])
def test_auto_precision_is_resolved_and_recorded(make_cfg, monkeypatch, machine):
    monkeypatch.setattr(config_module, "default_mixed_precision", lambda: machine)
    cfg = make_cfg(mixed_precision="auto")
    assert cfg.mixed_precision == machine
    assert TrainConfig.from_dict(cfg.to_dict()).mixed_precision == machine


@pytest.mark.parametrize(("native", "warned"), [(False, True), (True, False)])
def test_bf16_on_a_cpu_without_bf16_units_warns(
    windows, make_model, make_cfg, monkeypatch, caplog, native, warned
):
    monkeypatch.setattr(trainer_module.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer_module, "default_mixed_precision", lambda: "bf16" if native else "no")
    cfg = make_cfg(steps=1, save_every=0, mixed_precision="bf16")
    with caplog.at_level(logging.WARNING, logger=trainer_module.__name__):
        train(make_model(), windows, collate_windows, cfg)
    assert (trainer_module.SLOW_BF16 in caplog.messages) is warned


def test_bad_inputs_name_the_problem(windows, make_model, make_cfg):
    with pytest.raises(ValueError, match="warmup_steps"):
        make_cfg(steps=2, warmup_steps=5)
    with pytest.raises(ValueError, match="collate"):
        train(make_model(), windows, None, make_cfg())
    frozen = make_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(frozen, windows, collate_windows, make_cfg())


def test_config_round_trip_rejects_unknown_keys(make_cfg):
    cfg = make_cfg()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown TrainConfig keys"):
        TrainConfig.from_dict(dict(cfg.to_dict(), learning_rate=1.0))


def test_latest_pointing_at_incomplete_folder_is_reported(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step-000002").mkdir(parents=True)
    (root / "latest").symlink_to("step-000002")
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        latest_checkpoint(root)
    assert latest_checkpoint(tmp_path / "missing") is None

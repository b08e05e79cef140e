"""Two-process DDP and FSDP training on CPU (gloo) via torchrun, as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlaworks.models.checkpoint import load_policy
from vlaworks.train.config import TrainConfig
from vlaworks.train.smoke import TinyPolicy, tiny_vla_policy
from vlaworks.train.trainer import lm_layer_classes

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(cmd: list[str]) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_torchrun_two_processes_stay_in_sync(tmp_path: Path):
    out = tmp_path / "ddp"
    stdout = _run([*TORCHRUN, "-m", "vlaworks.train.smoke", "--out", str(out), "--steps", "3", "--batch-size",
                   "2", "--grad-accum", "2", "--save-every", "3", "--cotrain", "--dump-params"])
    done = re.findall(r"rank (\d)/2 done: steps=3 final_loss=([0-9.]+)", stdout)
    assert sorted(rank for rank, _ in done) == ["0", "1"], stdout
    assert len({loss for _, loss in done}) == 1  # the logged loss is all-reduced
    p0 = load_file(str(out / "params-rank0.safetensors"))
    p1 = load_file(str(out / "params-rank1.safetensors"))
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    ckpt = out / "checkpoints" / "latest"
    assert {"rng-rank0.json", "rng-rank1.json", "model.safetensors"} <= {p.name for p in ckpt.iterdir()}
    saved = load_file(str(ckpt / "model.safetensors"))
    assert torch.equal(saved["action_head.weight"], p0["action_head.weight"])


def _losses(stdout: str) -> dict[str, list[float]]:
    found = re.findall(r"rank (\d)/\d done: steps=3 final_loss=[0-9.]+ losses=([0-9.,]+)", stdout)
    return {rank: [float(x) for x in losses.split(",")] for rank, losses in found}


def test_fsdp_two_processes_match_one_process_and_save_a_loadable_policy(tmp_path: Path):
    smoke = ["-m", "vlaworks.train.smoke", "--vla", "--steps", "3", "--save-every", "3"]
    sharded = _losses(_run([*TORCHRUN, *smoke, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp",
                            "--batch-size", "2"]))
    single = _losses(_run([sys.executable, *smoke, "--out", str(tmp_path / "one"), "--batch-size", "4"]))
    assert sorted(sharded) == ["0", "1"] and sharded["0"] == sharded["1"]
    np.testing.assert_allclose(sharded["0"], single["0"], rtol=1e-4)  # same global batch of 4
    fsdp_ckpt, one_ckpt = (tmp_path / run / "checkpoints" / "latest" for run in ("fsdp", "one"))
    saved = load_file(str(fsdp_ckpt / "model.safetensors"))
    reference = load_file(str(one_ckpt / "model.safetensors"))
    assert saved.keys() == reference.keys()  # the full-state-dict layout of a one-process run
    for k in saved:  # Adam moves a weight whose gradient is rounding noise (the attention key bias,
        # softmax-invariant) by up to lr = 1e-3 a step, whatever the summation order: 3 steps' worth
        torch.testing.assert_close(saved[k], reference[k], rtol=0.0, atol=3e-3, msg=k)
    policy = load_policy(fsdp_ckpt)  # this pytest process has no process group: a fresh load
    for k, v in policy.state_dict().items():
        if k in saved:
            assert torch.equal(v, saved[k]), k


def test_distributed_strategy_is_validated(tmp_path: Path):
    with pytest.raises(ValueError, match="distributed must be 'ddp' or 'fsdp'; got 'zero3'"):
        TrainConfig(out_dir=tmp_path, distributed="zero3")


def test_fsdp_needs_transformers_decoder_layers():
    assert lm_layer_classes(tiny_vla_policy()) == ["Qwen2DecoderLayer"]  # the vision layers stay in the root
    with pytest.raises(ValueError, match="found no LM decoder layer class .* with distributed='ddp'"):
        lm_layer_classes(TinyPolicy())

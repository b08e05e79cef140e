"""Two-process DDP training on CPU (gloo) via torchrun, as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def test_torchrun_two_processes_stay_in_sync(tmp_path: Path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vlaworks.train.smoke", "--out", str(out), "--steps", "3", "--batch-size", "2",
           "--grad-accum", "2", "--save-every", "3", "--cotrain", "--dump-params"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    done = re.findall(r"rank (\d)/2 done: steps=3 final_loss=([0-9.]+)", proc.stdout)
    assert sorted(rank for rank, _ in done) == ["0", "1"], proc.stdout
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

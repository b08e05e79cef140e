"""glibc malloc tuning: training steps stop re-faulting their memory; user settings and the
opt-out are respected."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from vlaworks import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Training steps of a small conv net (bc-cnn's first layers at batch 32, 64 px); prints the
# minor page faults per step once the allocator has seen two steps.
STEPS = """
import resource, torch
from vlaworks.allocator import tune_malloc
print(tune_malloc())
torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.GroupNorm(8, 32), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU())
x = torch.randn(32, 3, 64, 64)
def step():
    net(x).square().mean().backward()
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_step(tuning: str) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env[allocator.OPT_OUT_ENV] = tuning
    out = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_tuned_steps_reuse_their_memory() -> None:
    applied, tuned = _faults_per_step("1")
    not_applied, default = _faults_per_step("0")
    assert applied and not not_applied
    # glibc's defaults re-fault ~24 000 pages (~95 MB) per step here, the tuned heap ~800
    assert tuned < default / 5, (tuned, default)


def test_opt_out_and_user_settings_leave_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setenv(allocator.OPT_OUT_ENV, "0")
    assert allocator.tune_malloc() is False
    monkeypatch.delenv(allocator.OPT_OUT_ENV)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert allocator.tune_malloc() is False
    assert allocator._applied is False


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_applies_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_applied", False)  # the CLI tests may have applied it already
    for key in list(os.environ):
        if key.startswith("MALLOC_") or key in ("GLIBC_TUNABLES", allocator.OPT_OUT_ENV):
            monkeypatch.delenv(key)
    assert allocator.tune_malloc() is True
    assert allocator._applied is True
    assert allocator.tune_malloc() is True

"""Training throughput (samples/s) of the vlaworks trainer, printed as a markdown row.

By default it trains the tiny smoke policy on synthetic windows. Point it at any model
with ``--factory package.module:function``, where ``function(batch_size)`` returns
``(model, dataset, collate)`` ready for :func:`vlaworks.train.trainer.train`.
The first ``--skip`` steps (allocation, autotuning) are excluded from the average; the minor
page faults and system CPU time per step (``getrusage``) include them.

    .venv/bin/python bench/bench_train.py --steps 30 --batch-size 16
    torchrun --nproc_per_node 8 bench/bench_train.py --factory my.recipes:build --mixed-precision bf16
"""

from __future__ import annotations

import argparse
import csv
import importlib
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vlaworks.train.config import TrainConfig
from vlaworks.train.smoke import SyntheticWindows, TinyPolicy, collate_windows
from vlaworks.train.trainer import train


def _smoke_factory(batch_size: int) -> tuple[torch.nn.Module, Any, Callable]:
    return TinyPolicy(hidden=256), SyntheticWindows(max(256, 4 * batch_size), size=64), collate_windows


def _load_factory(spec: str) -> Callable[[int], tuple[torch.nn.Module, Any, Callable]]:
    module, sep, name = spec.partition(":")
    if not sep:
        raise SystemExit(f"--factory must look like package.module:function; got {spec!r}.")
    return getattr(importlib.import_module(module), name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--factory", default=None, help="module:function -> (model, dataset, collate)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the average")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.skip >= args.steps:
        raise SystemExit(f"--skip ({args.skip}) must be below --steps ({args.steps}).")
    torch.set_num_threads(args.threads)
    factory = _load_factory(args.factory) if args.factory else _smoke_factory
    model, dataset, collate = factory(args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(out_dir=Path(tmp), steps=args.steps, batch_size=args.batch_size,
                          grad_accum=args.grad_accum, num_workers=args.num_workers, save_every=0,
                          log_every=1, mixed_precision=args.mixed_precision, progress=False,
                          find_unused_parameters=True)
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = train(model, dataset, collate, cfg)
        after = resource.getrusage(resource.RUSAGE_SELF)
        metrics = Path(tmp) / "metrics.csv"
        if not metrics.exists():  # non-main ranks of a torchrun launch
            return
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))[args.skip:]
    sps = sum(float(r["samples_per_s"]) for r in rows) / len(rows)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    per_step = args.batch_size * args.grad_accum * world
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{args.threads} threads"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    name = args.factory or "smoke TinyPolicy(hidden=256), 64px"
    # page faults and kernel time per step of this process, warm-up steps included
    faults = (after.ru_minflt - before.ru_minflt) / args.steps
    sys_ms = 1000 * (after.ru_stime - before.ru_stime) / args.steps
    print("| model | device | procs | samples/step | precision | trainable params | samples/s | ms/step |"
          " final loss | minor faults/step | system ms/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {device} | {world} | {per_step} | {args.mixed_precision} | {trainable:,} | {sps:.1f} "
          f"| {1000 * per_step / sps:.1f} | {result.final_loss:.4f} | {faults:.0f} | {sys_ms:.0f} |")


if __name__ == "__main__":
    main()

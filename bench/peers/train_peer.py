"""Train a LeRobot peer (ACT or Diffusion Policy) on a vlaworks dataset with LeRobot's own trainer.

Runs in the peers venv (``bash bench/peers/setup.sh``), never in vlaworks' own: it calls
``lerobot.scripts.lerobot_train`` (LeRobot 0.4.4's ``lerobot-train``) on the dataset folder as
written by ``vlaworks generate`` (LeRobot v3.0 layout, read by LeRobot's own reader), with the
settings below stated on the command line, and records the wall-clock, steps and settings in
``OUT/peer.json`` beside LeRobot's checkpoint (``OUT/lerobot/checkpoints/last/pretrained_model``).

    OMP_NUM_THREADS=1 .venv-peers/bin/python bench/peers/train_peer.py --policy act \\
        --data runs/demo/data --out runs/peers/act --steps 1500
    .venv-peers/bin/python bench/peers/train_peer.py --policy act --threads 2 \\
        --data runs/demo/data --out runs/peers/act-wall --steps 5000 --max-wall-s 1068 --set save_freq=100

The second form compares at equal wall-clock: LeRobot's trainer is stopped after
``--max-wall-s`` seconds and its last saved checkpoint is the run (``peer.json`` records its
step and when it was written). Only for ACT, whose LeRobot preset has a constant lr, so that
checkpoint is exactly a run of its steps.

Settings that differ from LeRobot's defaults, and why (``--set`` passes any other flag through):

* no ImageNet backbone weights (``pretrained_backbone_weights=null``): they are downloaded at
  run time, and this benchmark's machines reach no model hub; the backbone trains from scratch;
* no ImageNet image statistics (``dataset.use_imagenet_stats=false``): they belong to the
  pretrained backbone. Datasets written before 2026-12-02 hold no image statistics, so their
  images reach the policy as LeRobot's reader gives them, float in [0, 1] (the peers' runs in
  BENCHMARKS.md); newer ones hold per-channel image statistics, which LeRobot's normaliser
  then uses as it does for its own datasets (state and actions are normalised with the
  dataset's statistics either way);
* video decoding with PyAV (``dataset.video_backend=pyav``): torchcodec needs system FFmpeg
  libraries this machine lacks;
* ACT: ``chunk_size`` 50 (ACT's 100 steps at 50 Hz is 2 s; our data is 25 Hz), lr 1e-4 for
  the transformer and the backbone (ACT's 1e-5 with a lower backbone lr is for fine-tuning a
  pretrained ResNet over 100k+ steps; here the backbone starts from scratch on a short budget);
* Diffusion Policy: ``n_obs_steps`` 1 (the policy server is stateless, so it cannot keep the
  previous observation; LeRobot's default is 2), ``crop_shape`` 56 × 56 (the 84 / 96 ratio of
  Diffusion Policy's random crop at our 64 px), ``down_dims`` and inference steps as given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

#: lerobot-train flags per peer (our settings; the rest are LeRobot's defaults)
PRESETS: dict[str, dict[str, str]] = {
    "act": {
        "policy.chunk_size": "50",
        "policy.n_action_steps": "50",
        "policy.optimizer_lr": "1e-4",
        "policy.optimizer_lr_backbone": "1e-4",
        "batch_size": "8",
    },
    "diffusion": {
        "policy.n_obs_steps": "1",
        "policy.drop_n_last_frames": "8",  # horizon - n_action_steps - n_obs_steps + 1
        "policy.crop_shape": "[56,56]",
        "policy.down_dims": "[256,512,1024]",
        "policy.noise_scheduler_type": "DDIM",
        "policy.num_inference_steps": "10",
        "batch_size": "32",
    },
}


def refuse(message: str) -> NoReturn:
    """Stop on bad input as vlaworks' CLI does: ``error: <message>`` on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def lerobot_flags(args: argparse.Namespace) -> dict[str, str]:
    """Every ``lerobot-train`` flag of this run: the common ones, the peer's preset, ``--set``."""
    flags = {
        "dataset.repo_id": f"vlaworks/{Path(args.data).resolve().parent.name}",
        "dataset.root": str(Path(args.data).resolve()),
        "dataset.video_backend": "pyav",
        "dataset.use_imagenet_stats": "false",
        "policy.type": args.policy,
        "policy.device": "cpu",
        "policy.push_to_hub": "false",
        "policy.pretrained_backbone_weights": "null",
        "output_dir": str(Path(args.out).resolve() / "lerobot"),
        "steps": str(args.steps),
        "save_freq": str(args.steps),
        "log_freq": str(args.log_freq),
        "eval_freq": "0",
        "num_workers": str(args.workers),
        "seed": str(args.seed),
        "wandb.enable": "false",
        **PRESETS[args.policy],
    }
    if args.batch_size is not None:
        flags["batch_size"] = str(args.batch_size)
    if args.lr is not None:
        flags["policy.optimizer_lr"] = str(args.lr)
        if args.policy == "act":
            flags["policy.optimizer_lr_backbone"] = str(args.lr)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            refuse(f"--set takes KEY=VALUE (a lerobot-train flag without '--'); got {item!r}.")
        flags[key] = value
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", choices=sorted(PRESETS), required=True)
    parser.add_argument("--data", required=True, help="dataset folder (vlaworks generate's output)")
    parser.add_argument("--out", required=True, help="run folder (must not exist)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, help="default: the preset's (ACT 8, Diffusion 32)")
    parser.add_argument("--lr", type=float, help="default: the preset's (ACT 1e-4, Diffusion 1e-4)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=1, help="data-loader processes (video decoding)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-freq", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--max-wall-s",
        type=float,
        help="stop LeRobot's trainer after this many seconds and keep its last checkpoint (equal "
        "wall-clock comparisons; ACT only, whose constant lr makes that checkpoint a complete run "
        "of its steps; set save_freq small, e.g. --set save_freq=100)",
    )
    args = parser.parse_args()
    if args.max_wall_s is not None and args.max_wall_s <= 0:
        refuse(f"--max-wall-s takes a positive number of seconds; got {args.max_wall_s:g}.")
    if args.max_wall_s is not None and args.policy != "act":
        refuse(
            f"--max-wall-s needs a constant-lr peer (act); {args.policy}'s lr schedule is planned for "
            "--steps, so stopping it early is not a run of fewer steps. Pick --steps instead."
        )

    out = Path(args.out)
    if out.exists():
        refuse(f"{out} exists; pass a new --out (LeRobot refuses to overwrite a run).")
    flags = lerobot_flags(args)  # checks --set before anything is written
    out.mkdir(parents=True)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "lerobot.scripts.lerobot_train",
        *(f"--{k}={v}" for k, v in flags.items()),
    ]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    started_at = time.time()
    trainer = subprocess.Popen(command, env=env)
    try:
        returncode: int | None = trainer.wait(timeout=args.max_wall_s)
    except subprocess.TimeoutExpired:
        trainer.terminate()
        trainer.wait()
        returncode = None  # stopped by --max-wall-s
    wall_s = time.perf_counter() - start
    stopped = returncode is None
    if stopped:
        last = Path(flags["output_dir"]) / "checkpoints" / "last"
        if not last.exists():
            raise SystemExit(
                f"no checkpoint was saved within {args.max_wall_s:g} s; pass a smaller save_freq "
                "(--set save_freq=N) or a longer --max-wall-s."
            )
        # LeRobot names checkpoint folders by step and points `last` at the newest complete one
        checkpoint = last.resolve()
        steps, checkpoint_wall_s = int(checkpoint.name), checkpoint.stat().st_mtime - started_at
    elif returncode != 0:
        raise SystemExit(f"lerobot-train failed (exit {returncode}); see its output above.")
    else:
        steps, checkpoint_wall_s = args.steps, wall_s

    import lerobot
    import torch

    batch_size = int(flags["batch_size"])
    summary = {
        "policy": args.policy,
        "data": flags["dataset.root"],
        "steps": steps,
        "planned_steps": args.steps,
        "stopped_by_max_wall_s": stopped,
        "batch_size": batch_size,
        "samples": steps * batch_size,
        "threads": args.threads,
        "workers": args.workers,
        "train_wall_s": round(wall_s, 1),
        "checkpoint_wall_s": round(checkpoint_wall_s, 1),
        "samples_per_s": round(steps * batch_size / checkpoint_wall_s, 2),
        "load_average_after": os.getloadavg(),
        "lerobot": lerobot.__version__,
        "torch": torch.__version__,
        "checkpoint": str(Path(flags["output_dir"]) / "checkpoints" / "last" / "pretrained_model"),
        "lerobot_flags": flags,
    }
    (out / "peer.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("steps", "batch_size", "train_wall_s", "samples_per_s")}))


if __name__ == "__main__":
    main()

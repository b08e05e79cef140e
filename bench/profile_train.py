"""Where a training step of the demo policy spends its time: samples/s and a torch.profiler table.

Builds the policy with ``bench/factories.py``'s demo factories, then times
forward + backward + AdamW on real tabletop windows (data loading is timed apart) and
prints the top operators by self CPU time. Options switch one factor at a time: the
patch merger, bf16 autocast and the attention kernel.

    cd bench && ../.venv/bin/python profile_train.py --merge 1 --precision no --attn sdpa   # pre-issue-9
    cd bench && ../.venv/bin/python profile_train.py --merge 2 --precision bf16 --attn eager # demo default
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from factories import IMAGE_SIZE, _windows_and_policy
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--merge", type=int, default=2, help="token_merge of prismatic-tiny")
    parser.add_argument("--precision", choices=["no", "bf16"], default="bf16")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="eager")
    parser.add_argument("--proprio", action="store_true", help="vlm4vla+proprio instead of vlm4vla")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="profiler rows to print (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    options = {"image_size": IMAGE_SIZE, "patch_size": 8, "token_merge": args.merge,
               "attn_implementation": args.attn}
    policy, windows, collate = _windows_and_policy(
        "vlm4vla+proprio" if args.proprio else "vlm4vla",
        {"policy.cameras": ["base", "wrist"], "policy.image_size": IMAGE_SIZE, "policy.chunk_size": 8,
         "policy.backbone_options": options},
    )
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    indices = list(range(len(windows)))

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = collate([windows[i] for i in random.sample(indices, args.batch_size)])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss, _ = policy(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return t1 - t0, time.perf_counter() - t1

    for _ in range(3):
        step()
    times = [step() for _ in range(args.steps)]
    data = sum(t[0] for t in times) / len(times)
    compute = sum(t[1] for t in times) / len(times)
    rate = args.batch_size / (data + compute)
    print(f"merge {args.merge}, {args.precision}, {args.attn}: data {1000 * data:.1f} ms + compute "
          f"{1000 * compute:.1f} ms per step of {args.batch_size} -> {rate:.1f} samples/s")
    if args.top:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()

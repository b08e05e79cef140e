"""Mask IoU of a ``<SEG>`` policy (PokeVLA goal-aware segmentation) on held-out demos, as a table.

Coarse vs fine, per view, from :func:`vlaworks.eval.masks.mask_iou` (cIoU over all scored
frames, gIoU over the frames where the view shows the target), then the cIoU per instruction:

    .venv/bin/python bench/bench_seg_iou.py --policy RUN --data HELDOUT [--every 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlaworks.eval.masks import mask_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="Run or policy folder trained with seg_mask.")
    parser.add_argument("--data", type=Path, required=True, help="Held-out dataset with --segmentation.")
    parser.add_argument("--every", type=int, default=2, help="Score every N-th frame.")
    parser.add_argument("--json", type=Path, help="Also write the raw result here.")
    args = parser.parse_args()
    result = mask_iou(args.policy, args.data, every=args.every)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['frames']} frames, masks {result['mask_size']} x {result['mask_size']}")
    print("| view | target visible | coarse cIoU | fine cIoU | coarse gIoU | fine gIoU |")
    print("|---|---|---|---|---|---|")
    for view, r in result["views"].items():
        print(
            f"| {view} | {r['visible']:.0%} | {r['coarse']['ciou']:.3f} | {r['fine']['ciou']:.3f} "
            f"| {r['coarse']['giou']:.3f} | {r['fine']['giou']:.3f} |"
        )
    views = list(result["views"])
    print()
    print("| instruction | " + " | ".join(f"{v} coarse | {v} fine" for v in views) + " |")
    print("|---|" + "---|" * (2 * len(views)))
    for instruction, per in result["instructions"].items():
        cells = " | ".join(f"{per[v]['coarse']:.3f} | {per[v]['fine']:.3f}" for v in views)
        print(f"| {instruction} | {cells} |")


if __name__ == "__main__":
    main()

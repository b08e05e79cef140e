"""Per-chunk inference latency of the token heads (bins / string / FAST) vs the query head,
OpenVLA-OFT's parallel decoding and π0's flow-matching expert (10 Euler steps over a
prefix encoded once).

All heads run on the same randomly initialised ``prismatic-tiny`` backbone, one chunk at
a time (batch 1, the serving case) and for a small batch. Reported per head: tokens per
chunk (generated tokens; for OFT the ``chunk x dim`` placeholders fed in one pass), LM
calls per chunk (prompt forward + cached steps; grammar-forced tokens share a step),
median latency, its ratio to the bin head and the inverse, the throughput in chunks per
second relative to bins (seed 004 reports 0.5-1.3x *extra* time for strings, the goal
here is string <= 1.3x bins; OFT reports 26x OpenVLA's action throughput with chunk 8).

    .venv/bin/python bench/bench_token_heads.py --chunk 8 --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.flow import FlowMatchingHead
from vlaworks.models.heads.parallel_l1 import ParallelL1Head
from vlaworks.models.heads.query_mlp import QueryMLPHead
from vlaworks.models.heads.token import BinTokenizer, FastTokenizer, StringTokenizer, TokenActionHead


def smooth_chunks(n: int, chunk: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, chunk)[None, :, None]
    freq, phase, amp = rng.uniform(0.2, 1.5, (3, n, 1, dim))
    return amp / 1.5 * np.sin(2 * np.pi * freq * t + 4 * phase)


class CountingBackbone:
    """Counts backbone forward / step calls of the wrapped backbone."""

    def __init__(self, backbone) -> None:
        self.inner, self.calls = backbone, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def step(self, ids, cache):
        self.calls += 1
        return self.inner.step(ids, cache)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def make_batch(b: int, image_size: int, chunk: int, dim: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 1, 3, image_size, image_size), generator=g, dtype=torch.uint8)
    return Batch(images=images, instructions=["pick up the red cube and put it in the bowl"] * b)


def time_head(head: ActionHead, backbone, batch: Batch, repeats: int) -> tuple[float, int]:
    """Median seconds per predict call and backbone calls per call."""
    counter = CountingBackbone(backbone)
    head.predict(batch, counter, [])  # warm-up (and binding)
    counter.calls = 0
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        head.predict(batch, counter, [])
        times.append(time.perf_counter() - start)
    return statistics.median(times), counter.calls // repeats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--dim", type=int, default=7)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = build_backbone("prismatic-tiny", image_size=args.image_size).eval().to(args.device)
    data = smooth_chunks(2000, args.chunk, args.dim)
    fast = FastTokenizer(args.chunk, args.dim, vocab_size=256).fit(data)
    sample = smooth_chunks(200, args.chunk, args.dim, seed=1)
    fast_err = float(
        np.mean([np.abs(fast.decode(fast.encode(c), args.chunk, args.dim) - c).mean() for c in sample])
    )
    heads: dict[str, tuple[ActionHead, float | None]] = {  # tokens per chunk (None: no LM tokens)
        "bins (OpenVLA)": (TokenActionHead(BinTokenizer(), args.chunk, args.dim), args.chunk * args.dim),
        "string (seed 004)": (
            TokenActionHead(StringTokenizer(), args.chunk, args.dim),
            float(np.mean([len(StringTokenizer().encode(c)) + 1 for c in sample])),
        ),
        "FAST (seed 003)": (
            TokenActionHead(fast, args.chunk, args.dim),
            float(np.mean([len(fast.encode(c)) + 1 for c in sample])),
        ),
    }
    heads["query MLP (continuous)"] = (QueryMLPHead(backbone.hidden_size, args.chunk, args.dim), 1.0)
    heads["parallel L1 (OpenVLA-OFT)"] = (
        ParallelL1Head(backbone.hidden_size, args.chunk, args.dim),
        float(args.chunk * args.dim),
    )
    flow = FlowMatchingHead(backbone.hidden_size, args.chunk, args.dim)
    heads["flow expert (pi0, 10 steps)"] = (flow, None)
    for head, _ in heads.values():
        head.to(args.device).eval()

    print(
        f"prismatic-tiny, image {args.image_size}px, chunk {args.chunk} x {args.dim}, device {args.device}, "
        f"threads {args.threads}; FAST mean abs reconstruction error {fast_err:.4f}\n"
    )
    print(
        "| head | batch | tokens / chunk | backbone calls | ms / predict | ms / chunk | vs bins "
        "| throughput vs bins |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for b in args.batch:
        batch = make_batch(b, args.image_size, args.chunk, args.dim).to(args.device)
        base = None
        for name, (head, tokens) in heads.items():
            seconds, calls = time_head(head, backbone, batch, args.repeats)
            base = base or seconds
            count = "-" if tokens is None else f"{tokens:.1f}"
            print(
                f"| {name} | {b} | {count} | {calls} | {seconds * 1e3:.1f} | {seconds * 1e3 / b:.1f} | "
                f"{seconds / base:.2f}x | {base / seconds:.1f}x |"
            )


if __name__ == "__main__":
    main()

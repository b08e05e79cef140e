"""Per-chunk inference latency of PokeVLA's action expert vs OpenVLA-OFT's parallel-L1 head on
the same backbone.

Both run on one randomly initialised ``prismatic-tiny`` at the demo's view settings (base +
wrist, 64 px, 8 px patches merged 2 x 2: 32 image tokens at 64 px) with the proprio state, one chunk
of 8 x 7 per call, batch 1 (the serving case) and a small batch. OFT appends 56 zero
placeholders to the LM sequence and decodes them with its MLP ResNet; the expert appends
its learnable action queries (64 by default, VLA-Adapter's count; also shown with 8) and
runs its cross-attention layers after the one LM call; "+ <SEG>" adds one causal token in
front of the queries and the expert's <SEG> attention. Reported: LM tokens appended per
chunk, head parameters, ms per predict call (median and minimum over the repeats: on a
shared machine the minimum is the least disturbed), ms per chunk (median / batch), the
median ratio to OFT, and the decoder alone (the head's own work on a ready backbone output:
OFT's MLP ResNet vs the expert's layers, minimum).

    .venv/bin/python bench/bench_pokevla_head.py --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.parallel_l1 import ParallelL1Head
from vlaworks.models.heads.pokevla_expert import SEG_BLOCK, PokeVLAExpertHead, PokeVLAExpertOptions

STATE_DIM = 7


@torch.no_grad()
def timings(fn, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` (without autograd) after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def predict_call(head: ActionHead, backbone, batch: Batch, prefix: list[ExtraTokens]):
    """One ``predict`` of ``head`` on ``batch`` (the backbone forward included)."""
    return lambda: head.predict(batch, backbone, prefix)


def decoder_only(head: ActionHead, backbone, batch: Batch, prefix: list[ExtraTokens]):
    """A call of the head's own decoder on a backbone output computed once."""
    with torch.no_grad():
        blocks = [*prefix, *head.extra_tokens(batch, backbone, training=False)]
        out = backbone(batch.images, batch.instructions, blocks)
    if isinstance(head, PokeVLAExpertHead):
        return lambda: head.decode(out, batch.state)
    return lambda: head.decode(out)


def make_batch(b: int, image_size: int, device: str) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 2, 3, image_size, image_size), generator=g, dtype=torch.uint8)
    state = torch.randn(b, STATE_DIM, generator=g)
    return Batch(
        images=images, instructions=["pick up the red cube and put it in the bowl"] * b,
        camera_names=("base", "wrist"), state=state,
    ).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--dim", type=int, default=7)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = build_backbone(
        "prismatic-tiny", image_size=args.image_size, patch_size=8, token_merge=2, attn_implementation="eager"
    ).eval().to(args.device)
    h, c, d = backbone.hidden_size, args.chunk, args.dim
    seg = torch.randn(1, 1, h, device=args.device)
    heads: dict[str, tuple[ActionHead, bool, int]] = {  # head, <SEG> in the prefix, LM tokens appended
        "parallel L1 (OpenVLA-OFT)": (ParallelL1Head(h, c, d), False, c * d),
        "PokeVLA expert, 64 queries": (PokeVLAExpertHead(h, c, d, STATE_DIM), False, 64),
        "PokeVLA expert, 64 queries + <SEG>": (PokeVLAExpertHead(h, c, d, STATE_DIM, seg=True), True, 65),
        "PokeVLA expert, 8 queries": (
            PokeVLAExpertHead(h, c, d, STATE_DIM, options=PokeVLAExpertOptions(queries=8)), False, 8
        ),
    }
    for head, _, _ in heads.values():
        head.to(args.device).eval()
    print(
        f"prismatic-tiny (LM width {h}), base + wrist at {args.image_size} px, chunk {c} x {d}, "
        f"device {args.device}, threads {args.threads}, median of {args.repeats}\n"
    )
    print(
        "| head | batch | LM tokens appended | head params | ms / predict (median, min) | ms / chunk "
        "| vs OFT | decoder alone, ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for b in args.batch:
        batch = make_batch(b, args.image_size, args.device)
        base = None
        for name, (head, with_seg, tokens) in heads.items():
            prefix = [ExtraTokens(SEG_BLOCK, embeds=seg.expand(b, -1, -1))] if with_seg else []
            calls = timings(predict_call(head, backbone, batch, prefix), args.repeats)
            decoder = timings(decoder_only(head, backbone, batch, prefix), args.repeats)
            median = statistics.median(calls)
            base = base or median
            params = sum(p.numel() for p in head.parameters())
            print(
                f"| {name} | {b} | {tokens} | {params / 1e6:.2f} M "
                f"| {median * 1e3:.1f}, {min(calls) * 1e3:.1f} | {median * 1e3 / b:.1f} "
                f"| {median / base:.2f}x | {min(decoder) * 1e3:.2f} |"
            )


if __name__ == "__main__":
    main()

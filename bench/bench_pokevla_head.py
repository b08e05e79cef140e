"""Per-chunk inference latency of PokeVLA's action expert vs OpenVLA-OFT's parallel-L1 head on
the same backbone.

Both run on one randomly initialised ``prismatic-tiny`` at the demo's view settings (base +
wrist, 64 px, 8 px patches merged 2 x 2: 32 image tokens at 64 px) with the proprio state, one chunk
of 8 x 7 per call, batch 1 (the serving case) and a small batch. OFT appends 56 zero
placeholders to the LM sequence and decodes them with its MLP ResNet; the expert appends
its learnable action queries (64 by default, VLA-Adapter's count; also shown with 8) and
runs its cross-attention layers after the one LM call; "+ <SEG>" adds one causal token in
front of the queries and the expert's <SEG> attention. Reported: LM tokens appended per
chunk, head parameters, median ms per predict call and per chunk, and the ratio to OFT.

    .venv/bin/python bench/bench_pokevla_head.py --repeats 20
"""

from __future__ import annotations

import argparse

import torch
from bench_token_heads import time_head

from vlaworks.batch import Batch
from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.base import ExtraTokens
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.parallel_l1 import ParallelL1Head
from vlaworks.models.heads.pokevla_expert import SEG_BLOCK, PokeVLAExpertHead, PokeVLAExpertOptions

STATE_DIM = 7


class WithPrefix(torch.nn.Module):
    """A head whose predict gets a fixed prefix block (a stand-in <SEG> token)."""

    def __init__(self, head: ActionHead, block: ExtraTokens) -> None:
        super().__init__()
        self.head, self.block = head, block

    def predict(self, batch: Batch, backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        seg = ExtraTokens(SEG_BLOCK, embeds=self.block.embeds.expand(batch.size, -1, -1))
        return self.head.predict(batch, backbone, [*prefix, seg])


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
    seg = ExtraTokens(SEG_BLOCK, embeds=torch.randn(1, 1, h, device=args.device))
    heads: dict[str, tuple[torch.nn.Module, int]] = {
        "parallel L1 (OpenVLA-OFT)": (ParallelL1Head(h, c, d), c * d),
        "PokeVLA expert, 64 queries": (PokeVLAExpertHead(h, c, d, STATE_DIM), 64),
        "PokeVLA expert, 64 queries + <SEG>": (
            WithPrefix(PokeVLAExpertHead(h, c, d, STATE_DIM, seg=True), seg), 65
        ),
        "PokeVLA expert, 8 queries": (
            PokeVLAExpertHead(h, c, d, STATE_DIM, options=PokeVLAExpertOptions(queries=8)), 8
        ),
    }
    for head, _ in heads.values():
        head.to(args.device).eval()
    print(
        f"prismatic-tiny (LM width {h}), base + wrist at {args.image_size} px, chunk {c} x {d}, "
        f"device {args.device}, threads {args.threads}, median of {args.repeats}\n"
    )
    print("| head | batch | LM tokens appended | head params | ms / predict | ms / chunk | vs OFT |")
    print("|---|---|---|---|---|---|---|")
    for b in args.batch:
        batch = make_batch(b, args.image_size, args.device)
        base = None
        for name, (head, tokens) in heads.items():
            seconds, _ = time_head(head, backbone, batch, args.repeats)
            base = base or seconds
            params = sum(p.numel() for p in head.parameters() if p.requires_grad)
            print(
                f"| {name} | {b} | {tokens} | {params / 1e6:.2f} M | {seconds * 1e3:.1f} | "
                f"{seconds * 1e3 / b:.1f} | {seconds / base:.2f}x |"
            )


if __name__ == "__main__":
    main()

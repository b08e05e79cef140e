"""FAST tokenizer (seed 003 §4.4) on a recorded dataset: reconstruction error and tokens per chunk.

The tokenizer is fitted on the dataset's normalised action chunks (as ``vlaworks train``
fits a FAST head) and scored on held-out chunks (the last episodes of a seeded episode order;
one episode may straddle the split): mean / max absolute
reconstruction error in normalised units ([-1, 1]) and tokens per chunk against the
``chunk * 7`` tokens of the 256-bin tokenizer.

    .venv/bin/python bench/bench_fast_fit.py --data DATA --chunk 4 8 --vocab 128 1024
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.models.heads.token import FastTokenizer
from vlaworks.processing import PolicyProcessor
from vlaworks.recipes.training import action_chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--chunk", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--vocab", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--held-out", type=float, default=0.2, help="Share of chunks scored, not fitted.")
    args = parser.parse_args()
    ds = LeRobotDataset(args.data)
    normalizer = Normalizer(ds.stats, mode="q99", keys=("action",))
    print("| chunk | vocab | fit chunks | held-out chunks | tokens/chunk (bins) | mean abs err "
          "| max abs err |")
    print("|---|---|---|---|---|---|---|")
    for chunk in args.chunk:
        processor = PolicyProcessor(ds.camera_names[:1], chunk_size=chunk, normalizer=normalizer)
        windows = WindowDataset(ds, processor)
        chunks = action_chunks(windows, max_chunks=100_000)  # episodes in a seeded order
        split = int(len(chunks) * (1 - args.held_out))
        for vocab in args.vocab:
            tok = FastTokenizer(chunk, chunks.shape[2], vocab_size=vocab).fit(chunks[:split])
            r = tok.fit_report(chunks[split:])
            print(
                f"| {chunk} | {r['vocab_size']} | {split} | {r['chunks']} | {r['tokens_per_chunk']:.1f} "
                f"({chunk * chunks.shape[2]}) | {r['mean_abs_error']:.4f} | {r['max_abs_error']:.4f} |"
            )


if __name__ == "__main__":
    main()

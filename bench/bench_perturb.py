"""Perturbation calibration: how much each family changes the frames, and whether the task stays solvable.

Usage: ``.venv/bin/python bench/bench_perturb.py [--suite spatial] [--layout fixed] [--scenes 30]
[--episodes 5] [--image-size 64] [--severities 0.25,0.5,0.75,1] [--skip-expert]``.

Two markdown tables (BENCHMARKS.md, "Perturbation calibration"), one row per
``FAMILY@CALIBRATION:SEVERITY`` (v2 at each severity, v1 at severity 1):

* image change: mean absolute pixel difference (0-255) between the first frame of each of
  ``--scenes`` seeded episodes and the same episode clean, per camera; for ``language`` the
  share of the instruction's words that the clean instruction lacks;
* the scripted expert's closed-loop success (``vlaworks.eval.run.evaluate``, ``--episodes``
  per task, Wilson 95 % intervals): the perturbed tasks must stay solvable.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from vlaworks.envs.tabletop import CAMERAS, TabletopEnv
from vlaworks.eval.run import evaluate
from vlaworks.sim.perturb import FAMILIES

SEED = 10_000


def cells(severities: list[float]) -> list[str]:
    """Every family (``mask_background`` aside: not a LIBERO-Plus dimension) at v1:1 and v2:each."""
    families = [f for f in FAMILIES if f != "mask_background"]
    return [spec for f in families for spec in [f"{f}@v1:1", *(f"{f}@v2:{s:g}" for s in severities)]]


def first_frames(suite: str, layout: str, image_size: int, scenes: int, spec: list[str]) -> list[dict]:
    """The first observation of ``scenes`` seeded episodes under ``spec``."""
    env = TabletopEnv(suite, image_size=image_size, layout=layout, perturbations=spec)
    try:
        return [env.reset(seed=SEED + i)[0] for i in range(scenes)]
    finally:
        env.close()


def image_change(clean: list[dict], other: list[dict]) -> dict[str, float]:
    """Mean absolute pixel difference per camera, and the share (%) of new instruction words."""
    out = {
        cam: float(
            np.mean(
                [
                    np.abs(o["images"][cam].astype(float) - c["images"][cam]).mean()
                    for c, o in zip(clean, other, strict=True)
                ]
            )
        )
        for cam in CAMERAS
    }
    new_words = []
    for c, o in zip(clean, other, strict=True):
        words, known = o["instruction"].lower().split(), set(c["instruction"].lower().split())
        new_words.append(sum(w not in known for w in words) / len(words))
    out["words"] = 100 * float(np.mean(new_words))
    return out


def expert_success(suite: str, layout: str, image_size: int, episodes: int, spec: str) -> str:
    """``rate [low, high] (n)`` of the scripted expert under ``spec``."""
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            "expert",
            [suite],
            episodes,
            perturb=[spec] if spec else [],
            out=tmp,
            seed=SEED,
            videos=0,
            image_size=image_size,
            env_kwargs={"layout": layout},
            quiet=True,
        )
    s = result.overall()
    return f"{100 * s.rate:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}] (n={s.n})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="spatial")
    parser.add_argument("--layout", default="fixed")
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=5, help="expert episodes per task")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--severities", default="0.25,0.5,0.75,1")
    parser.add_argument("--skip-expert", action="store_true")
    args = parser.parse_args()
    severities = [float(s) for s in args.severities.split(",")]
    start = time.time()
    clean = first_frames(args.suite, args.layout, args.image_size, args.scenes, [])
    print(
        f"Suite {args.suite}, {args.layout} layouts, {args.image_size} px, {args.scenes} scenes "
        f"(seeds {SEED}+), expert {args.episodes} episodes per task\n"
    )
    print("| perturbation | base MAD | wrist MAD | new words % | expert success % [95 % CI] |")
    print("|---|---:|---:|---:|---|")
    rows = ["clean", *cells(severities)]
    for spec in rows:
        frames = (
            clean
            if spec == "clean"
            else first_frames(args.suite, args.layout, args.image_size, args.scenes, [spec])
        )
        change = image_change(clean, frames)
        expert = (
            "-"
            if args.skip_expert
            else expert_success(
                args.suite, args.layout, args.image_size, args.episodes, "" if spec == "clean" else spec
            )
        )
        print(
            f"| {spec} | {change['base']:.1f} | {change['wrist']:.1f} | {change['words']:.0f} | {expert} |",
            flush=True,
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{time.time() - start:.0f} s, load average {load:.1f}")


if __name__ == "__main__":
    main()

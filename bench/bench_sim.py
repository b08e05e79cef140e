"""Tabletop env throughput: env steps/s with base + wrist cameras, RGB only vs RGB + depth + seg.

Usage: ``.venv/bin/python bench/bench_sim.py [--image-size 128] [--steps 300] [--suite goal]``.
Steps are driven by the noisy scripted expert (so contacts and grasps are realistic) and
only ``env.step`` is timed. Prints a markdown table. The machine may be shared while you
measure: the table records the load average so numbers can be read in context.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from vlaworks.envs.tabletop import TabletopEnv


def measure(suite: str, image_size: int, steps: int, extras: bool, seed: int = 0) -> dict[str, float]:
    """Run ``steps`` expert-driven env steps (resetting on episode end); return timing numbers."""
    env = TabletopEnv(suite, image_size=image_size, depth=extras, segmentation=extras)
    try:
        obs, _ = env.reset(seed=seed)
        expert = env.expert(noise=0.1)
        expert.reset()
        step_time = reset_time = 0.0
        episodes = 0
        for _ in range(steps):
            action = expert.act(obs)
            t0 = time.perf_counter()
            obs, _, terminated, truncated, _ = env.step(action)
            step_time += time.perf_counter() - t0
            if terminated or truncated:
                episodes += 1
                t0 = time.perf_counter()
                obs, _ = env.reset(seed=seed + episodes)
                reset_time += time.perf_counter() - t0
                expert.reset()
        physics = _physics_only(env, steps=100)
    finally:
        env.close()
    return {
        "steps_per_s": steps / step_time,
        "ms_per_step": 1000 * step_time / steps,
        "ms_per_reset": 1000 * reset_time / max(episodes, 1),
        "physics_ms": physics,
    }


def _physics_only(env: TabletopEnv, steps: int) -> float:
    """Milliseconds per control step of physics alone (no rendering)."""
    env.reset(seed=123)
    zero = np.zeros(7)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.scene.apply_action(zero)
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--suite", default="goal")
    args = parser.parse_args()
    rows = [
        (label, measure(args.suite, args.image_size, args.steps, extras))
        for label, extras in (("RGB (base + wrist)", False), ("RGB + depth + segmentation", True))
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Tabletop env, suite {args.suite}, {args.image_size}x{args.image_size}, {args.steps} steps, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}\n"
    )
    print("| observation | env steps/s | ms/step | physics ms/step | ms/reset |")
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['steps_per_s']:.0f} | {r['ms_per_step']:.2f} | {r['physics_ms']:.2f} "
            f"| {r['ms_per_reset']:.1f} |"
        )


if __name__ == "__main__":
    main()

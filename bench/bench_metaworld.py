"""Meta-World adapter: env step + render speed per MT10 task, and the scripted experts without rendering.

Speed (default): ``--steps`` expert-driven steps per task at ``--image-size`` with the base
and wrist cameras; only ``env.step`` is timed, in wall-clock and in this process's CPU time
(the machine may be shared: CPU time is what a free core would give). A last row times
Meta-World's stock renderer (``render_mode="rgb_array"``, one camera) for comparison.

``--experts N``: each task's scripted expert (noise 0) on the protocol's first ``N``
evaluation seeds, physics only (no images): success and mean episode length per task. Run it
under two MuJoCo versions to compare them (``PYTHONPATH=DIR`` with ``pip install --target DIR
--no-deps mujoco==3.3.0`` puts Meta-World's pinned version first).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_metaworld.py [--image-size 64] [--steps 300]
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_metaworld.py --experts 50
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

from vlaworks.envs.metaworld import MetaWorldEnv, task_class, to_metaworld
from vlaworks.envs.metaworld_protocol import MT10
from vlaworks.eval.rollout import episode_seed
from vlaworks.eval.stats import wilson_interval


def speed(task: str, image_size: int, steps: int) -> dict[str, float]:
    """Time ``steps`` expert-driven ``env.step`` calls (resetting on episode end)."""
    env = MetaWorldEnv("mt10", task=task, image_size=image_size)
    try:
        obs, _ = env.reset(seed=0)
        expert = env.expert(noise=0.1)
        expert.reset()
        wall = cpu = 0.0
        episodes = 0
        for _ in range(steps):
            action = expert.act(obs)
            w0, c0 = time.perf_counter(), time.process_time()
            obs, _, terminated, truncated, _ = env.step(action)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            if terminated or truncated:
                episodes += 1
                obs, _ = env.reset(seed=episodes)
                expert.reset()
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            env._mw.step(to_metaworld(np.zeros(7)))
            if env._mw.curr_path_length >= env._mw.max_path_length:
                env._mw.reset()
        physics = (time.process_time() - c0) / steps
    finally:
        env.close()
    return {"wall": wall / steps, "cpu": cpu / steps, "physics": physics}


def stock_render_speed(task: str, image_size: int, steps: int) -> dict[str, float]:
    """Meta-World's own renderer: ``step`` + ``render()`` of one camera per step."""
    mw = task_class(task)(render_mode="rgb_array", camera_name="corner4", width=image_size, height=image_size)
    mw._partially_observable = False
    del mw.sawyer_observation_space
    mw._freeze_rand_vec = False
    mw._set_task_called = True
    mw.reset()
    mw.render()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        mw.step(np.zeros(4, np.float32))
        mw.render()
    out = {"wall": (time.perf_counter() - w0) / steps, "cpu": (time.process_time() - c0) / steps}
    mw.close()
    return out


def experts(n: int) -> list[tuple[str, int, float]]:
    """Per task: (task, successes of ``n``, mean length of the successes) on evaluation seeds."""
    rows = []
    for task in MT10.tasks:
        from metaworld.policies import ENV_POLICY_MAP

        mw = task_class(task)()
        mw._partially_observable = False
        del mw.sawyer_observation_space
        mw._freeze_rand_vec, mw.seeded_rand_vec, mw._set_task_called = False, True, True
        policy = ENV_POLICY_MAP[task]()
        wins, lengths = 0, []
        for k in range(n):
            mw.seed(episode_seed(MT10.eval_seed, f"mt10/{task}", k))
            obs, _ = mw.reset()
            for t in range(MT10.max_episode_steps):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    action = np.clip(policy.get_action(obs), -1, 1)
                obs, _, _, _, info = mw.step(action)
                if info["success"]:
                    wins += 1
                    lengths.append(t + 1)
                    break
        mw.close()
        rows.append((task, wins, float(np.mean(lengths)) if lengths else float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--experts", type=int, default=0, help="Episodes per task of the expert-only run.")
    args = parser.parse_args()
    import mujoco

    load = os.getloadavg()[0]
    print(
        f"mujoco {mujoco.__version__}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}\n"
    )
    if args.experts:
        print(f"| task | expert success (n={args.experts}) | 95 % CI | mean length |")
        print("|---|---:|---|---:|")
        for task, wins, length in experts(args.experts):
            lo, hi = wilson_interval(wins, args.experts)
            print(f"| {task} | {wins}/{args.experts} | [{100 * lo:.1f}, {100 * hi:.1f}] | {length:.1f} |")
        return
    print(f"{args.steps} expert-driven steps per task, {args.image_size}x{args.image_size}, base + wrist\n")
    print("| task | env steps/s (wall) | ms/step wall | ms/step CPU | physics ms/step CPU |")
    print("|---|---:|---:|---:|---:|")
    totals = []
    for task in MT10.tasks:
        r = speed(task, args.image_size, args.steps)
        totals.append(r)
        print(f"| {task} | {1 / r['wall']:.0f} | {1000 * r['wall']:.1f} | {1000 * r['cpu']:.1f} | "
              f"{1000 * r['physics']:.2f} |")
    wall, cpu = np.mean([r["wall"] for r in totals]), np.mean([r["cpu"] for r in totals])
    print(f"| **mean** | {1 / wall:.0f} | {1000 * wall:.1f} | {1000 * cpu:.1f} | |")
    r = stock_render_speed("reach-v3", args.image_size, args.steps)
    print(f"| stock renderer, reach-v3, 1 camera | {1 / r['wall']:.0f} | {1000 * r['wall']:.1f} | "
          f"{1000 * r['cpu']:.1f} | |")


if __name__ == "__main__":
    main()

"""LIBERO through :class:`vlaworks.envs.libero.LiberoEnv`: speed and two sanity episodes.

Usage (in the LIBERO venv, ``bash scripts/setup_libero.sh`` first)::

    MUJOCO_GL=egl .venv-libero/bin/python bench/bench_libero.py [--sizes 224,128] [--steps 60] [--speed-only]

Per render size (two cameras, image size = render size): the first reset (the env and its
simulator built), later resets (LIBERO's hard reset + init state + openpi's 10 wait steps)
and ``env.step`` throughput under a zero policy, plus physics alone (a simulator without
cameras). Then, at the smallest size, one
full openpi-protocol episode of a zero policy on ``libero_spatial`` (expected: failure
after 220 steps) and one scripted pick-and-place on ``libero_object`` task 0 that reads
the object and basket positions from LIBERO's raw observation (expected: success), which
checks our action convention and LIBERO's success signal end to end. Prints a markdown
table with the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from vlaworks.envs.libero import CAMERAS, LiberoEnv, LiberoPackage, LiberoProtocol
from vlaworks.eval.stats import wilson_interval

ZERO = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


def first_task_env(suite: str, size: int) -> LiberoEnv:
    """Task 0 of ``suite`` under openpi's protocol, both cameras rendered at ``size``."""
    task = LiberoPackage(suite).names[0]
    return LiberoEnv(suite, task, image_size=size, protocol=LiberoProtocol(render_size=size))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure_speed(size: int, steps: int, resets: int) -> dict[str, float]:
    """Construction, reset and step times with both cameras rendered at ``size``."""
    build, env = timed(lambda: first_task_env("libero_spatial", size))
    try:
        first, _ = timed(lambda: env.reset(seed=0, options={"episode": 0}))  # builds the simulator
        reset_times = [
            timed(lambda k=k: env.reset(seed=k, options={"episode": k}))[0] for k in range(1, resets + 1)
        ]
        step_time, _ = timed(lambda: [env.step(ZERO) for _ in range(steps)])
    finally:
        env.close()
    return {
        "first_reset_s": build + first,
        "reset_s": float(np.mean(reset_times)),
        "steps_per_s": steps / step_time,
    }


def physics_steps_per_s(steps: int) -> float:
    """Control steps per second of LIBERO without any camera (robosuite ``use_camera_obs=False``)."""
    source = LiberoPackage("libero_spatial")
    sim = source.make_simulator(0, cameras=[], size=16, horizon=steps + 1)
    try:
        sim.reset()
        sim.set_init_state(source.init_states(0)[0])
        elapsed, _ = timed(lambda: [sim.step(ZERO.tolist()) for _ in range(steps)])
    finally:
        sim.close()
    return steps / elapsed


def zero_policy_episode(size: int) -> dict[str, object]:
    """One full episode of openpi's protocol on libero_spatial task 0 with a zero policy."""
    env = first_task_env("libero_spatial", size)
    try:
        env.reset(seed=0, options={"episode": 0})
        steps, success, done = 0, False, False
        t0 = time.perf_counter()
        while not done:
            _, _, success, truncated, _ = env.step(ZERO)
            steps += 1
            done = success or truncated
        return {"success": success, "steps": steps, "seconds": time.perf_counter() - t0}
    finally:
        env.close()


def towards(eef: np.ndarray, target: np.ndarray, gripper: float) -> np.ndarray:
    """A delta-pose action moving the end effector towards ``target`` (saturating 2 cm away)."""
    action = np.zeros(7)
    action[:3] = np.clip((target - eef) / 0.02, -1.0, 1.0)
    action[6] = gripper
    return action


def scripted_pick_and_place(env: LiberoEnv, episode: int) -> dict[str, object]:
    """An episode of libero_object task 0 (pick up the alphabet soup, place it in the basket)
    by a waypoint script reading the object and basket positions from LIBERO's raw observation."""
    env.reset(seed=episode, options={"episode": episode})
    obj_key, basket_key = (f"{name}_pos" for name in env.simulator.obj_of_interest)
    obj, basket = env.raw[obj_key].copy(), env.raw[basket_key].copy()
    high = obj[2] + 0.2
    plan = [  # (target, gripper, steps to hold once there)
        (obj + [0, 0, 0.1], -1.0, 0),
        (obj, -1.0, 0),
        (obj, 1.0, 12),
        (np.array([obj[0], obj[1], high]), 1.0, 0),
        (np.array([basket[0], basket[1], high]), 1.0, 0),
        (np.array([basket[0], basket[1], high]), -1.0, 30),
    ]
    phase, held, steps, success, truncated = 0, 0, 0, False, False
    t0 = time.perf_counter()
    while not (success or truncated):
        target, grip, hold = plan[phase]
        _, _, success, truncated, _ = env.step(towards(env.raw["robot0_eef_pos"], target, grip))
        steps += 1
        there = np.linalg.norm(env.raw["robot0_eef_pos"] - target) < 0.01
        held = held + 1 if there or hold else 0
        if held > hold and phase < len(plan) - 1:
            phase, held = phase + 1, 0
    return {"success": success, "steps": steps, "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,128", help="render sizes (px), comma separated")
    parser.add_argument("--steps", type=int, default=60, help="timed env steps per size")
    parser.add_argument("--resets", type=int, default=3, help="timed resets per size")
    parser.add_argument("--scripted", type=int, default=5, help="scripted episodes (init states 0..N-1)")
    parser.add_argument("--speed-only", action="store_true", help="skip the two sanity episodes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, cameras {list(CAMERAS)}, load {os.getloadavg()[0]:.1f}")
    print("| render px | env + first reset s | reset s | env steps/s | load |")
    print("|---|---|---|---|---|")
    for size in sizes:
        r = measure_speed(size, args.steps, args.resets)
        print(f"| {size} | {r['first_reset_s']:.1f} | {r['reset_s']:.2f} | {r['steps_per_s']:.2f} | "
              f"{os.getloadavg()[0]:.1f} |")
    print(f"physics only (no cameras): {physics_steps_per_s(args.steps):.1f} steps/s")
    if args.speed_only:
        return
    size = min(sizes)
    zero = zero_policy_episode(size)
    print(f"zero policy, libero_spatial task 0, init state 0, {size} px: success={zero['success']} after "
          f"{zero['steps']} steps ({zero['seconds']:.0f} s)")
    env = first_task_env("libero_object", size)
    try:
        runs = [scripted_pick_and_place(env, k) for k in range(args.scripted)]
    finally:
        env.close()
    k, n = sum(r["success"] for r in runs), len(runs)
    low, high = wilson_interval(k, n)
    print(f"scripted pick-and-place, libero_object task 0, init states 0..{n - 1}, {size} px: {k}/{n} "
          f"successes [{100 * low:.0f}, {100 * high:.0f}] %, steps {[r['steps'] for r in runs]}, "
          f"{np.mean([r['seconds'] for r in runs]):.0f} s per episode")


if __name__ == "__main__":
    main()

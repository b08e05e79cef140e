"""Roll out the noisy scripted expert and write successful demonstrations as a dataset.

Episode reset seeds come from :func:`vlaworks.miniature.generation_seed`, a stream of their
own, so generated layouts never coincide with evaluation episodes. Attempts cycle over the
suite's tasks (the env picks task ``seed % n_tasks``); failed attempts are dropped and
counted in the success rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from vlaworks.data.layout import TARGET_SEGMENT_KEY
from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.miniature import GENERATE_SUITE_STRIDE, generation_seed
from vlaworks.sim.scene import ACTION_NAMES, STATE_DIM, STATE_NAMES, SUBSTEPS, TIMESTEP
from vlaworks.sim.tasks import SUITES, goal_done

if TYPE_CHECKING:
    from vlaworks.data.lerobot import DatasetWriter

FPS = round(1.0 / (TIMESTEP * SUBSTEPS))
CAMERAS = ("base", "wrist")


def dataset_features(image_size: int, depth: bool, segmentation: bool = False) -> dict[str, dict]:
    """LeRobot v3 ``features`` of a tabletop dataset.

    ``depth`` adds depth, camera matrices and segmentation; ``segmentation`` (implied by
    ``depth``) adds the per-camera segmentation ``int32 [H, W]`` (0 background, 1 gripper,
    >= 2 objects) and ``observation.segmentation.target``, the segmentation id of the object
    the current (first unfinished) goal manipulates: the ground truth of ``vlaworks annotate``.
    """
    hw = [image_size, image_size]
    feats: dict[str, dict] = {}
    for cam in CAMERAS:
        feats[f"observation.images.{cam}"] = {
            "dtype": "video",
            "shape": [*hw, 3],
            "names": ["height", "width", "channels"],
        }
    feats["observation.state"] = {"dtype": "float32", "shape": [STATE_DIM], "names": list(STATE_NAMES)}
    feats["action"] = {"dtype": "float32", "shape": [7], "names": list(ACTION_NAMES)}
    if depth:
        for cam in CAMERAS:
            feats[f"observation.depth.{cam}"] = {
                "dtype": "float32",
                "shape": hw,
                "names": ["height", "width"],
            }
            feats[f"observation.camera.{cam}.intrinsics"] = {
                "dtype": "float32",
                "shape": [3, 3],
                "names": None,
            }
            feats[f"observation.camera.{cam}.extrinsics"] = {
                "dtype": "float32",
                "shape": [4, 4],
                "names": None,
            }
    if depth or segmentation:
        for cam in CAMERAS:
            feats[f"observation.segmentation.{cam}"] = {
                "dtype": "int32",
                "shape": hw,
                "names": ["height", "width"],
            }
        feats[TARGET_SEGMENT_KEY] = {"dtype": "int32", "shape": [1], "names": None}
    return feats


def target_segment(env: TabletopEnv) -> int:
    """Segmentation id of the object of the episode's first unfinished goal (the last goal's
    once all are done)."""
    goals = env.episode.goals
    current = next((rg for rg in goals if not goal_done(rg, env.scene)), goals[-1])
    return int(current.obj.seg_id)


def _frame(
    env: TabletopEnv, obs: dict, action: np.ndarray, depth: bool, segmentation: bool
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "observation.state": obs["state"],
        "action": action.astype(np.float32),
        "task": obs["instruction"],
    }
    for cam in CAMERAS:
        frame[f"observation.images.{cam}"] = obs["images"][cam]
    if depth:
        mats = env.camera_matrices()
        for cam in CAMERAS:
            frame[f"observation.depth.{cam}"] = obs["depth"][cam]
            frame[f"observation.camera.{cam}.intrinsics"] = mats[cam]["intrinsics"]
            frame[f"observation.camera.{cam}.extrinsics"] = mats[cam]["extrinsics"]
    if depth or segmentation:
        for cam in CAMERAS:
            frame[f"observation.segmentation.{cam}"] = obs["segmentation"][cam]
        frame[TARGET_SEGMENT_KEY] = np.int32(target_segment(env))
    return frame


def rollout(
    env: TabletopEnv, seed: int, noise: float, depth: bool, segmentation: bool = False
) -> tuple[list[dict[str, Any]], bool]:
    """One expert episode: its frames (observation before each action) and whether it succeeded.

    The env executes the noisy expert action; the frame is labelled with the expert's clean
    action for that state (DART-style), so the noise widens the visited states without
    being imitated.
    """
    obs, info = env.reset(seed=seed)
    expert = env.expert(noise=noise)
    expert.reset()
    frames = []
    for _ in range(env.max_episode_steps):
        action = expert.act(obs)
        frames.append(_frame(env, obs, expert.clean_action, depth, segmentation))
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return frames, bool(info["success"])


def dir_size(path: Path) -> int:
    """Bytes of the files under ``path`` (the dataset's size on disk, for the report)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def collect_episodes(
    writer: DatasetWriter,
    episodes: int,
    run: Callable[[int], tuple[list[dict[str, Any]], bool]],
    seeds: Callable[[int], int],
) -> dict[str, Any]:
    """Run the expert's attempts ``run(seeds(0))``, ``run(seeds(1))``, ... (each: its frames and
    whether it succeeded), writing each successful one to ``writer`` as an episode, until
    ``episodes`` are kept or :func:`max_attempts` ran. Returns the report entry ``{"attempts",
    "kept", "success_rate", "steps_per_s", "frames"}`` (steps per second include writing)."""
    kept = attempts = steps = 0
    t0 = time.perf_counter()
    while kept < episodes and attempts < max_attempts(episodes):
        frames, ok = run(seeds(attempts))
        attempts += 1
        steps += len(frames)
        if ok:
            for frame in frames:
                writer.add_frame(frame)
            writer.save_episode()
            kept += 1
    elapsed = time.perf_counter() - t0
    return {
        "attempts": attempts,
        "kept": kept,
        "success_rate": kept / attempts,
        "steps_per_s": steps / max(elapsed, 1e-9),
        "frames": steps,
    }


def print_report(report: dict[str, Any], unit: str, console: Console | None = None) -> None:
    """The generation report as a table, one row per entry of ``report[unit + "s"]`` (``unit``:
    "suite" or "task")."""
    table = Table(title=f"generated {report['out']} ({report['bytes'] / 1e6:.1f} MB on disk)")
    for col in (unit, "expert success", "episodes kept", "env steps/s (incl. writing)"):
        table.add_column(col)
    for name, r in report[f"{unit}s"].items():
        table.add_row(
            name,
            f"{r['success_rate']:.1%} ({r['kept']}/{r['attempts']})",
            str(r["kept"]),
            f"{r['steps_per_s']:.0f}",
        )
    (console or Console()).print(table)


def max_attempts(episodes: int) -> int:
    """Expert rollouts tried per suite before giving up on ``episodes`` successful ones."""
    return 2 * episodes + 10


def check_episode_count(episodes: int, per: str) -> None:
    """Refuse an ``episodes`` count (per suite or per task: ``per``) that is not positive or whose
    attempts would run into the next ``per``'s block of generation seeds."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_attempts(episodes) > GENERATE_SUITE_STRIDE:
        raise ValueError(
            f"episodes must be at most {(GENERATE_SUITE_STRIDE - 10) // 2} per {per}, or its attempts would "
            f"reuse another {per}'s seeds; got {episodes}."
        )


def generate(
    suites: list[str],
    episodes: int,
    out: Path,
    seed: int = 0,
    image_size: int = 128,
    perturb: list[str] | None = None,
    depth: bool = False,
    noise: float = 0.1,
    overwrite: bool = False,
    layout: str = "random",
    segmentation: bool = False,
) -> dict[str, Any]:
    """Write ``episodes`` successful demonstrations per suite to ``out``; report per-suite numbers.

    Returns ``{"suites": {suite: {"attempts", "kept", "success_rate", "steps_per_s", "frames"}},
    "bytes": int, "out": str}``. Gives up on a suite after :func:`max_attempts` attempts.
    ``layout`` ("random" or LIBERO-style "fixed") must match the one used to evaluate.
    ``segmentation`` records ground-truth segmentation without depth (see :func:`dataset_features`).
    """
    from vlaworks.data.lerobot import DatasetWriter

    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ValueError(f"unknown suite(s) {unknown or suites}; choose from {SUITES}")
    check_episode_count(episodes, "suite")
    out = Path(out)
    report: dict[str, Any] = {"suites": {}, "out": str(out)}
    features = dataset_features(image_size, depth, segmentation)
    with DatasetWriter(out, fps=FPS, features=features, overwrite=overwrite) as w:
        for suite in suites:
            env = TabletopEnv(
                suite,
                image_size=image_size,
                perturbations=list(perturb or []),
                depth=depth,
                segmentation=depth or segmentation,
                layout=layout,
            )
            report["suites"][suite] = collect_episodes(
                w,
                episodes,
                partial(rollout, env, noise=noise, depth=depth, segmentation=segmentation),
                partial(generation_seed, seed, SUITES.index(suite)),
            )
            env.close()
    report["bytes"] = dir_size(out)
    print_report(report, "suite")
    return report

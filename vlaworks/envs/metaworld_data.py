"""``vlaworks generate --env metaworld``: Meta-World's scripted experts written as a dataset.

The same LeRobotDataset v3 layout, features and rollout as the tabletop's demonstrations
(:mod:`vlaworks.sim.generate`): ``observation.images.base`` / ``.wrist``, the 7-D
``observation.state`` and 7-D ``action`` (rotations zero), the task's instruction as the
frame's ``task``. The expert's actions run with Gaussian noise on x, y, z and are recorded
clean; an episode ends at success, and failed attempts are dropped and counted in the
expert's success rate. Attempt ``a`` of the suite's task ``i`` resets with seed
:func:`vlaworks.miniature.generation_seed` ``(seed, i, a)``, apart from the evaluation seeds
(:mod:`vlaworks.envs.metaworld_protocol`); a task's seeds do not depend on which other tasks
are generated with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vlaworks.envs.metaworld import FPS, MetaWorldEnv, suite_task_names
from vlaworks.miniature import generation_seed
from vlaworks.sim.generate import CAMERAS, check_episode_count, dataset_features, max_attempts, rollout

ROBOT_TYPE = "metaworld-sawyer"


def generate(
    suite: str,
    episodes: int,
    out: Path,
    tasks: Sequence[str] | None = None,
    seed: int = 0,
    image_size: int = 64,
    noise: float = 0.1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``episodes`` successful demonstrations per task of ``suite`` (or of ``tasks``,
    names or ids within it) to ``out``; report per-task numbers.

    Returns ``{"tasks": {task id: {"attempts", "kept", "success_rate", "steps_per_s",
    "frames"}}, "bytes": int, "out": str, "seconds": float}``. Gives up on a task after
    :func:`~vlaworks.sim.generate.max_attempts` attempts.
    """
    from vlaworks.data.lerobot import DatasetWriter

    names = suite_task_names(suite)
    chosen = list(names) if tasks is None else [t.removeprefix(f"{suite}/") for t in tasks]
    unknown = [t for t in chosen if t not in names]
    if unknown or not chosen:
        raise ValueError(f"unknown task(s) {unknown or list(chosen)} of Meta-World suite {suite!r}; "
                         f"choose from {list(names)}")
    check_episode_count(episodes, "task")
    out = Path(out)
    report: dict[str, Any] = {"tasks": {}, "out": str(out)}
    start = time.perf_counter()
    console = Console()
    features = dataset_features(image_size, depth=False)
    with DatasetWriter(out, fps=FPS, features=features, robot_type=ROBOT_TYPE, overwrite=overwrite) as w:
        for name in chosen:
            env = MetaWorldEnv(suite, task=name, image_size=image_size, cameras=CAMERAS)
            kept = attempts = steps = 0
            t0 = time.perf_counter()
            while kept < episodes and attempts < max_attempts(episodes):
                episode_seed = generation_seed(seed, names.index(name), attempts)
                frames, ok = rollout(env, episode_seed, noise, depth=False)
                attempts += 1
                steps += len(frames)
                if ok:
                    for frame in frames:
                        w.add_frame(frame)
                    w.save_episode()
                    kept += 1
            elapsed = time.perf_counter() - t0
            env.close()
            report["tasks"][f"{suite}/{name}"] = {
                "attempts": attempts,
                "kept": kept,
                "success_rate": kept / attempts,
                "steps_per_s": steps / max(elapsed, 1e-9),
                "frames": steps,
            }
            console.print(f"{suite}/{name}: kept {kept} of {attempts} attempts ({elapsed:.0f} s)")
    report["seconds"] = time.perf_counter() - start
    report["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    _print_report(report, console)
    return report


def _print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"generated {report['out']} ({report['bytes'] / 1e6:.1f} MB on disk)")
    for col in ("task", "expert success", "episodes kept", "env steps/s (incl. writing)"):
        table.add_column(col)
    for task, r in report["tasks"].items():
        table.add_row(
            task,
            f"{r['success_rate']:.1%} ({r['kept']}/{r['attempts']})",
            str(r["kept"]),
            f"{r['steps_per_s']:.0f}",
        )
    console.print(table)

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
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from vlaworks.envs.metaworld import FPS, MetaWorldEnv, suite_task_names
from vlaworks.miniature import generation_seed
from vlaworks.sim.generate import (
    CAMERAS,
    check_episode_count,
    collect_episodes,
    dataset_features,
    dir_size,
    print_report,
    rollout,
)

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
            t0 = time.perf_counter()
            entry = collect_episodes(
                w,
                episodes,
                partial(rollout, env, noise=noise, depth=False),
                partial(generation_seed, seed, names.index(name)),
            )
            env.close()
            report["tasks"][f"{suite}/{name}"] = entry
            console.print(
                f"{suite}/{name}: kept {entry['kept']} of {entry['attempts']} attempts "
                f"({time.perf_counter() - t0:.0f} s)"
            )
    report["seconds"] = time.perf_counter() - start
    report["bytes"] = dir_size(out)
    print_report(report, "task", console)
    return report

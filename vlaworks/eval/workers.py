"""Running episode groups in-process or across spawn worker processes.

Every worker builds its own envs and policy from picklable specs: the policy from
``"expert"``, a policy folder (resolved once by :func:`resolve_policy_spec`, so every
worker loads the same weights) or a picklable callable, the envs from an
:class:`EnvConfig`. Work is split into groups of ``envs_per_worker`` episodes of one task;
a group runs vectorised (one ``predict_chunk`` for all its envs) and its results do not
depend on which worker ran it, so ``workers=W`` reproduces ``workers=1`` exactly.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlaworks.eval.expert import ExpertPolicy
from vlaworks.eval.results import EpisodeResult
from vlaworks.eval.rollout import EpisodeSpec, run_episodes
from vlaworks.serve.client import RemotePolicy, is_remote_spec

if TYPE_CHECKING:
    from vlaworks.policy_api import ChunkPolicy

PolicyFactory = Callable[[Sequence[Any]], "ChunkPolicy"]
PolicySpec = str | os.PathLike | PolicyFactory
EnvFactory = Callable[..., Any]

DEFAULT_ENV = "tabletop"
EXPERT = "expert"


def parse_perturbation(text: str) -> tuple[str, float]:
    """Split ``"FAMILY:SEVERITY"`` into ``(family, severity)``; raise naming the expected form."""
    family, sep, severity = str(text).partition(":")
    try:
        value = float(severity)
    except ValueError:
        value = None
    if not sep or not family.strip() or value is None:
        raise ValueError(f"Perturbation {text!r} is not FAMILY:SEVERITY (e.g. 'lighting:0.5', 'camera:1.0').")
    return family.strip(), value


def split_suite(suite: str) -> tuple[str, str]:
    """Split a suite name into (env name, suite): ``"spatial"`` -> (``"tabletop"``, ``"spatial"``),
    ``"libero/libero_10"`` -> (``"libero"``, ``"libero_10"``)."""
    name, sep, rest = suite.partition("/")
    return (name, rest) if sep else (DEFAULT_ENV, suite)


def default_env_factory(suite: str, task: str | None, **kwargs: Any) -> Any:
    """Build an env through :func:`vlaworks.envs.make_env` (suite ``ENV/SUITE``, default env tabletop)."""
    from vlaworks.envs import make_env

    name, suite_name = split_suite(suite)
    return make_env(name, suite=suite_name, task=task, **kwargs)


@dataclass(frozen=True)
class EnvConfig:
    """How every worker builds an env for (suite, task); must be picklable."""

    image_size: int = 128
    perturbations: tuple[str, ...] = ()
    factory: EnvFactory | None = None
    kwargs: dict = field(default_factory=dict)

    def make(self, suite: str, task: str | None) -> Any:
        factory = self.factory or default_env_factory
        return factory(
            suite, task, image_size=self.image_size, perturbations=tuple(self.perturbations), **self.kwargs
        )


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def _load_checkpoint(path: str, device: str | None) -> ChunkPolicy:
    from vlaworks.models.checkpoint import load_policy

    return load_policy(path, device=device or default_device())


@functools.lru_cache(maxsize=2)
def _connect(uri: str) -> ChunkPolicy:
    return RemotePolicy(uri)


def policy_from_spec(spec: PolicySpec, envs: Sequence[Any], device: str | None = None) -> ChunkPolicy:
    """The policy that drives a group of ``envs``: the expert bound to them, a saved policy
    (policy or run folder) loaded once per process on ``device`` (default: cuda if
    available), a policy server (``ws://``, one connection per process), or ``spec(envs)``."""
    if callable(spec):
        return spec(envs)
    if str(spec) == EXPERT:
        return ExpertPolicy(envs)
    if is_remote_spec(spec):
        return _connect(str(spec))
    return _load_checkpoint(str(spec), device)


def resolve_policy_spec(spec: PolicySpec) -> PolicySpec:
    """``"expert"`` and factories as they are; a path resolved to the policy folder it names
    (:func:`vlaworks.models.checkpoint.resolve_policy_folder`, checked before any worker
    starts: a missing or damaged policy is one clear error, not one per worker); a policy
    server (``ws://``) as it is, once it answers."""
    if callable(spec) or str(spec) == EXPERT:
        return spec
    if is_remote_spec(spec):
        RemotePolicy(str(spec)).close()  # no server there: one clear error before any env starts
        return spec
    if not Path(spec).exists():
        raise FileNotFoundError(
            f"Policy {str(spec)!r} is neither 'expert' nor a checkpoint folder nor a training run; "
            "pass --policy expert or the output folder of `vlaworks train`."
        )
    from vlaworks.models.checkpoint import resolve_policy_folder

    return str(resolve_policy_folder(spec))


def policy_label(spec: PolicySpec) -> str:
    """Human label of a policy spec for reports."""
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__)
    return str(spec)


class Worker:
    """Runs episode groups; keeps the current task's envs alive between its groups.

    Groups arrive task by task, so envs of a previous task are closed when a new task
    starts: a worker holds at most ``envs_per_worker`` simulators at a time.
    """

    def __init__(
        self,
        policy: PolicySpec,
        env_config: EnvConfig,
        chunk_exec: str,
        out: Path | None,
        device: str | None = None,
    ) -> None:
        self.policy = policy
        self.device = device
        self.env_config = env_config
        self.chunk_exec = chunk_exec
        self.out = out
        self._envs: dict[tuple[str, str], list[Any]] = {}

    def envs_for(self, suite: str, task: str, n: int) -> list[Any]:
        if (suite, task) not in self._envs:
            self.close()
        pool = self._envs.setdefault((suite, task), [])
        while len(pool) < n:
            pool.append(self.env_config.make(suite, task))
        return pool[:n]

    def run(self, group: Sequence[EpisodeSpec]) -> list[EpisodeResult]:
        envs = self.envs_for(group[0].suite, group[0].task, len(group))
        policy = policy_from_spec(self.policy, envs, self.device)
        return run_episodes(envs, policy, group, chunk_exec=self.chunk_exec, video_root=self.out)

    def close(self) -> None:
        for envs in self._envs.values():
            for env in envs:
                env.close()
        self._envs.clear()


_WORKER: Worker | None = None
PARENT_POLL_S = 1.0


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent_pid`` is gone.

    A killed ``vlaworks eval`` (SIGTERM, SIGKILL, a closed terminal) runs none of its
    clean-up, and its spawned workers would go on simulating for minutes, holding the CPU
    the next run needs; an orphan is re-parented, so a changed parent pid means the
    parent died.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def share_cores(processes: int) -> None:
    """Give this process its share of the cores when ``processes`` run side by side: that many
    intra-op threads for torch and as many software-rendering threads.

    The thread environment variables are read when torch and the renderer load; torch is
    already imported here (this module imports it), so its pool is sized directly. Without
    this, every process starts one thread per core: ``processes`` pools spinning on the same
    cores made a 2-worker evaluation on 2 cores six times slower (BENCHMARKS.md, "Evaluation
    throughput").
    """
    import torch

    threads = max(1, (os.cpu_count() or 1) // processes)
    torch.set_num_threads(threads)
    os.environ.setdefault("LP_NUM_THREADS", str(threads))


def _init_worker(
    policy: PolicySpec,
    env_config: EnvConfig,
    chunk_exec: str,
    out: Path | None,
    device: str | None,
    workers: int,
    parent_pid: int,
) -> None:
    global _WORKER
    exit_with_parent(parent_pid)
    share_cores(workers)
    _WORKER = Worker(policy, env_config, chunk_exec, out, device)


def _run_group(group: Sequence[EpisodeSpec]) -> list[EpisodeResult]:
    if _WORKER is None:
        raise RuntimeError("Evaluation worker used before initialisation.")
    return _WORKER.run(group)


def make_groups(specs: Sequence[EpisodeSpec], envs_per_worker: int) -> list[list[EpisodeSpec]]:
    """Split specs into consecutive groups of at most ``envs_per_worker`` episodes of one task."""
    if envs_per_worker < 1:
        raise ValueError(f"envs_per_worker must be >= 1; got {envs_per_worker}.")
    groups: list[list[EpisodeSpec]] = []
    for spec in specs:
        last = groups[-1] if groups else None
        if last and len(last) < envs_per_worker and (last[0].suite, last[0].task) == (spec.suite, spec.task):
            last.append(spec)
        else:
            groups.append([spec])
    return groups


def run_groups(
    groups: Sequence[Sequence[EpisodeSpec]],
    policy: PolicySpec,
    env_config: EnvConfig,
    chunk_exec: str,
    out: Path | None,
    workers: int = 1,
    device: str | None = None,
) -> Iterator[list[EpisodeResult]]:
    """Yield each group's results as it finishes (in-process when ``workers == 1``)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}.")
    if workers == 1:
        worker = Worker(policy, env_config, chunk_exec, out, device)
        try:
            for group in groups:
                yield worker.run(group)
        finally:
            worker.close()
        return
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(policy, env_config, chunk_exec, out, device, workers, os.getpid()),
    )
    try:
        futures = [executor.submit(_run_group, group) for group in groups]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool as err:
        raise RuntimeError(
            "An evaluation worker process died. Spawned workers re-import the calling script, so "
            'a script that calls evaluate(workers > 1) must do so under `if __name__ == "__main__":`; '
            "otherwise check the worker's error above (e.g. out of memory, a simulator crash)."
        ) from err
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

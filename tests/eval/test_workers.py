import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from eval_fakes import greedy_policy, make_fake_env

from vlaworks.eval.rollout import EpisodeSpec
from vlaworks.eval.workers import (
    EnvConfig,
    Worker,
    _init_worker,
    make_groups,
    parse_perturbation,
    resolve_policy_spec,
    split_suite,
)


def _spec(task, k):
    return EpisodeSpec("toy", task, k, seed=k)


def test_groups_hold_one_task_each():
    specs = [_spec("toy/reach", k) for k in range(3)] + [_spec("toy/reach_far", k) for k in range(2)]
    groups = make_groups(specs, envs_per_worker=2)
    assert [[(s.task, s.episode) for s in g] for g in groups] == [
        [("toy/reach", 0), ("toy/reach", 1)],
        [("toy/reach", 2)],
        [("toy/reach_far", 0), ("toy/reach_far", 1)],
    ]
    with pytest.raises(ValueError, match="envs_per_worker"):
        make_groups(specs, 0)


def test_worker_reuses_envs_within_a_task_and_closes_them_after():
    config = EnvConfig(image_size=8, perturbations=("camera:0.5",), factory=make_fake_env)
    worker = Worker(greedy_policy, config, "full", out=None)
    first = worker.envs_for("toy", "toy/reach", 2)
    assert worker.envs_for("toy", "toy/reach", 1) == first[:1]
    assert first[0].perturbations == ("camera:0.5",) and first[0].image_size == 8
    worker.run([_spec("toy/reach_far", 0)])
    assert all(env.closed for env in first)
    worker.close()
    assert worker._envs == {}


def test_perturbation_and_suite_parsing():
    assert parse_perturbation("lighting:0.5") == ("lighting", 0.5)
    for bad in ("lighting", "lighting:high", ":1.0"):
        with pytest.raises(ValueError, match="FAMILY:SEVERITY"):
            parse_perturbation(bad)
    assert split_suite("spatial") == ("tabletop", "spatial")
    assert split_suite("libero/libero_10") == ("libero", "libero_10")


def test_policy_spec_keeps_expert_and_factories_and_names_a_missing_path(tmp_path):
    assert resolve_policy_spec("expert") == "expert"
    assert resolve_policy_spec(greedy_policy) is greedy_policy
    with pytest.raises(FileNotFoundError, match="'expret' is neither 'expert' nor a checkpoint folder"):
        resolve_policy_spec("expret")
    with pytest.raises(FileNotFoundError, match="No policy at"):  # a folder: the checkpoint resolver's error
        resolve_policy_spec(tmp_path)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an exited orphan waits, a zombie, until its new parent reaps it


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell one thread from all")
def test_a_worker_runs_on_its_share_of_the_cores():
    # One worker per core gets one thread each. torch is already imported when the initializer
    # runs, so the count must be set on torch itself: with a pool per core on every worker,
    # 2 workers ran 6x slower on 2 cores.
    config = EnvConfig(image_size=8, factory=make_fake_env)
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=mp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(greedy_policy, config, "full", None, None, os.cpu_count(), os.getpid()),
    ) as pool:
        assert pool.submit(_torch_threads).result() == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_worker_exits_when_its_parent_is_killed():
    worker = (
        "import os, time; from vlaworks.eval.workers import exit_with_parent; "
        "exit_with_parent(os.getppid(), poll_s=0.05); print(os.getpid(), flush=True); time.sleep(120)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(proc.stdout.readline())
        assert _running(child)
        proc.kill()  # SIGKILL: the parent runs no clean-up at all
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child)
    finally:
        proc.kill()
        proc.wait()
        if child is not None and _running(child):
            os.kill(child, signal.SIGKILL)

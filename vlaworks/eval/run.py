"""``evaluate``: closed-loop evaluation of a policy on task suites, with a written report.

This is the library function behind ``vlaworks eval``: it lists each suite's tasks, plans
``episodes`` deterministic episodes per task, runs them (in-process or in spawn worker
processes, vectorised ``envs_per_worker`` at a time), prints a rich table and writes
``results.json``, ``report.md``, ``success.png`` and the first ``videos`` episodes of every
task as mp4 into ``out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vlaworks.eval.chunking import validate_chunk_exec
from vlaworks.eval.report import write_report
from vlaworks.eval.results import EpisodeResult, EvalResult
from vlaworks.eval.rollout import EpisodeSpec, episode_seed
from vlaworks.eval.workers import (
    EXPERT,
    EnvConfig,
    EnvFactory,
    PolicySpec,
    make_groups,
    parse_perturbation,
    policy_label,
    resolve_policy_spec,
    run_groups,
)
from vlaworks.models.config import PolicyConfig
from vlaworks.prompts import check_prompt_mode
from vlaworks.serve.client import is_remote_spec


def suite_tasks(
    suite: str, env_config: EnvConfig, only: Sequence[str] | None = None, episodes: int | None = None
) -> list[str]:
    """Task ids of ``suite``, read from the ``tasks`` attribute of a suite env.

    ``only`` keeps the named tasks, given as full ids (``spatial/pick_leftmost_place_bowl``)
    or names (the id's last part, ``pick_leftmost_place_bowl``); names of no task of any
    evaluated suite are rejected by :func:`evaluate`. ``episodes`` per task are refused
    before any rollout when the env has fewer (its ``episodes_per_task``, e.g. LIBERO's 50
    init states).
    """
    env = env_config.make(suite, None)
    try:
        tasks = list(getattr(env, "tasks", []) or [])
        limit = getattr(env, "episodes_per_task", None)
    finally:
        env.close()
    if episodes is not None and limit is not None and episodes > limit:
        raise ValueError(f"Suite {suite!r} has {limit} episodes per task; pass --episodes {limit} or fewer.")
    if not tasks:
        raise ValueError(f"Suite {suite!r} lists no tasks; its env must expose a non-empty `tasks` list.")
    if only is None:
        return tasks
    return [t for t in tasks if t in only or t.rpartition("/")[2] in only]


def plan_episodes(
    suites: Sequence[str], tasks: dict[str, list[str]], episodes: int, seed: int, videos: int
) -> list[EpisodeSpec]:
    """Episode specs, suite by suite and task by task; the first ``videos`` of each task are recorded."""
    return [
        EpisodeSpec(suite, task, k, episode_seed(seed, task, k), record=k < videos)
        for suite in suites
        for task in tasks[suite]
        for k in range(episodes)
    ]


def results_table(result: EvalResult) -> Table:
    """A rich table of success per task and per suite with Wilson 95% CIs."""
    table = Table(title=f"{result.policy} ({result.setting})")
    for col in ("suite", "task", "success %", "95% CI", "n", "mean len"):
        justify = "right" if col in ("success %", "n", "mean len") else "left"
        table.add_column(col, justify=justify, overflow="fold")
    for suite in result.suites:
        for task in result.tasks(suite):
            s = result.task_summary(suite, task)
            ci = f"[{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"
            table.add_row(suite, task, f"{100 * s.rate:.1f}", ci, str(s.n), f"{s.mean_length:.1f}")
        s = result.suite_summary(suite)
        table.add_row(
            f"[bold]{suite}[/bold]",
            "[bold]all[/bold]",
            f"[bold]{100 * s.rate:.1f}[/bold]",
            f"[{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]",
            str(s.n),
            f"{s.mean_length:.1f}",
            end_section=True,
        )
    return table


def check_policy_reads_prompts(policy_spec: PolicySpec, prompt_mode: str) -> None:
    """Refuse a visual ``prompt_mode`` for a policy folder whose config has no prompt token source
    (``pixel_aware`` / ``visual_prompt``): it would ignore the prompt, and a report labelled with
    the mode would compare nothing. The expert, factories and policy servers are not checked."""
    if callable(policy_spec) or str(policy_spec) == EXPERT or is_remote_spec(policy_spec):
        return
    from vlaworks.models.checkpoint import CONFIG_FILE

    config = PolicyConfig.load(Path(policy_spec) / CONFIG_FILE)
    if not config.prompt_sources:
        raise ValueError(
            f"--prompt-mode {prompt_mode} gives every episode a visual prompt, but the policy {policy_spec} "
            "has no prompt token source (pixel_aware / visual_prompt) and would ignore it; evaluate it with "
            "--prompt-mode text, or train a prompted recipe (e.g. pixelvla) on annotated data."
        )


def evaluate(
    policy_spec: PolicySpec,
    suites: Sequence[str],
    episodes: int,
    chunk_exec: str = "full",
    perturb: Sequence[str] = (),
    *,
    out: Path,
    workers: int = 1,
    seed: int = 0,
    videos: int = 2,
    image_size: int = 128,
    envs_per_worker: int = 1,
    tasks: Sequence[str] | None = None,
    env_factory: EnvFactory | None = None,
    env_kwargs: dict | None = None,
    device: str | None = None,
    quiet: bool = False,
    prompt_mode: str = "text",
) -> EvalResult:
    """Evaluate ``policy_spec`` (``"expert"``, a policy or training run folder, a policy
    server ``ws://HOST:PORT``, or a picklable ``factory(envs) -> ChunkPolicy``) on ``suites``
    and write the report into ``out``; a folder is resolved once to the policy folder it
    names, which labels the report.

    ``perturb`` holds ``"FAMILY[@CALIBRATION]:SEVERITY"`` strings passed to every env; ``tasks``
    restricts the run to some tasks of the suites (full ids or names within a suite). ``env_factory``
    (``factory(suite, task, image_size=, perturbations=, **env_kwargs)``) replaces
    :func:`vlaworks.envs.make_env`, e.g. for tests. A checkpoint is loaded once per worker
    on ``device`` (default: cuda if available, else cpu). Results do not depend on
    ``workers``; they depend on ``envs_per_worker`` only through batched inference numerics.
    ``prompt_mode`` (:mod:`vlaworks.prompts`) gives every episode that visual prompt of its
    target from the world's ground truth (the env option ``prompt_mode``); ``text``, the
    default, gives none. A visual mode is refused for a policy folder that cannot read prompts
    (:func:`check_policy_reads_prompts`).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1; got {episodes}.")
    policy_spec = resolve_policy_spec(policy_spec)
    if not suites:
        raise ValueError("Name at least one suite to evaluate, e.g. --suite spatial.")
    chunk_exec = validate_chunk_exec(chunk_exec)
    for p in perturb:
        parse_perturbation(p)
    check_prompt_mode(prompt_mode)
    if prompt_mode != "text":
        check_policy_reads_prompts(policy_spec, prompt_mode)
    prompts = {"prompt_mode": prompt_mode} if prompt_mode != "text" else {}
    env_config = EnvConfig(
        image_size=image_size,
        perturbations=tuple(perturb),
        factory=env_factory,
        kwargs={**(env_kwargs or {}), **prompts},
    )
    out = Path(out)
    task_lists = {suite: suite_tasks(suite, env_config, tasks, episodes) for suite in suites}
    if tasks is not None:
        found = {t for ts in task_lists.values() for t in ts}
        unknown = [t for t in tasks if not any(f == t or f.endswith(f"/{t}") for f in found)]
        if unknown or not found:
            every = [t for s in suites for t in suite_tasks(s, env_config)]
            raise ValueError(
                f"Unknown task(s) {unknown or list(tasks)} for suites {list(suites)}; choose from {every}."
            )
    suites = [s for s in suites if task_lists[s]]
    specs = plan_episodes(suites, task_lists, episodes, seed, videos)
    order = {(s.suite, s.task, s.episode): i for i, s in enumerate(specs)}
    groups = make_groups(specs, envs_per_worker)
    console = Console(quiet=quiet)
    collected: list[EpisodeResult] = []
    with console.status(f"evaluating {len(specs)} episodes") as status:
        for group_results in run_groups(groups, policy_spec, env_config, chunk_exec, out, workers, device):
            collected.extend(group_results)
            done = sum(e.success for e in collected)
            progress = f"{len(collected)}/{len(specs)} episodes, {done} successes"
            status.update(progress)
            if not console.is_terminal:  # a log file gets no spinner: one line per finished group
                console.print(progress, highlight=False)
    collected.sort(key=lambda e: order[(e.suite, e.task, e.episode)])
    result = EvalResult(
        policy=policy_label(policy_spec),
        suites=list(suites),
        episodes_per_task=episodes,
        chunk_exec=chunk_exec,
        perturbations=list(perturb),
        seed=seed,
        image_size=image_size,
        episodes=collected,
        prompt_mode=prompt_mode,
    )
    paths = write_report(result, out)
    console.print(results_table(result))
    console.print(f"report: {paths['markdown']}  results: {paths['json']}  plot: {paths['plot']}")
    return result

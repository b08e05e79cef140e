"""``vlaworks compare``: several recipes, the same data, budget and evaluation conditions.

:func:`run_compare` trains every recipe on one dataset with one
:class:`~vlaworks.miniature.MiniatureBudget` (by default the demo's :data:`MINIATURE`:
views, image and token grid, chunk, steps, batch size, learning rate, precision) and one
seed, then evaluates each trained policy closed-loop on the same held-out seeded episodes
under the named conditions of :mod:`vlaworks.eval.protocol` (seed 004 Tables II-IV).

It writes ``OUT/table.md`` (success with 95 % Wilson intervals, one row per recipe, one
column per condition) and ``OUT/results.json``; each recipe keeps its own run folder
``OUT/runs/<recipe>`` (resumable) and reports ``OUT/eval/<recipe>/<condition>``. With
``parallel > 1`` recipes run in that many spawned processes (one GPU serves them all).

With ``heldout`` (a dataset of demonstrations none of the recipes trained on) the table
gains each policy's open-loop action error there; with ``probes > 0`` every policy also
gets the linear probe and VQA accuracy on ``probes`` held-out questions against the
backbone it started from, in ``OUT/representation.md`` and ``OUT/probe/<recipe>``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlaworks.eval.protocol import CONDITIONS, condition_perturbations, protocol_table, representation_table
from vlaworks.eval.workers import exit_with_parent, share_cores
from vlaworks.miniature import MINIATURE, MiniatureBudget, eval_seed


@dataclass
class CompareConfig:
    """Everything the comparison holds fixed across recipes."""

    recipes: tuple[str, ...]
    data: Path
    suite: str
    out: Path
    layout: str = "random"
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    budget: MiniatureBudget = MINIATURE
    tasks: tuple[str, ...] | None = None
    workers: int = 1
    parallel: int = 1
    device: str | None = None
    seed: int = 0
    heldout: Path | None = None
    probes: int = 0
    #: dotted ``policy.*`` / ``cotrain.*`` overrides applied to every recipe after the budget's
    recipe_overrides: dict = field(default_factory=dict)
    #: every recipe starts from the budget's backbone as built (``"random"``) or from the cached
    #: VLM pretrained on it (``"pretrained"``, :func:`vlaworks.train.pretrain.resolve_vlm`)
    vlm: str = "random"

    def __post_init__(self) -> None:
        from vlaworks.recipes import recipe_names

        unknown = [r for r in self.recipes if r not in recipe_names()]
        if unknown or not self.recipes:
            raise ValueError(f"unknown recipe(s) {unknown or '(none given)'}; choose from {recipe_names()}")
        for c in self.conditions:
            condition_perturbations(c)
        from vlaworks.train.pretrain import check_vlm

        check_vlm(self.vlm)


def run_recipe(cfg: CompareConfig, name: str) -> dict[str, dict]:
    """Train ``name`` under ``cfg`` (resuming) and evaluate it under every condition."""
    from vlaworks.eval.protocol import representation
    from vlaworks.eval.run import evaluate
    from vlaworks.train.pipeline import build_recipe, train_policy
    from vlaworks.train.pretrain import resolve_vlm

    out, budget = Path(cfg.out), cfg.budget
    backbone = resolve_vlm(cfg.vlm, budget)  # pretrained once, by run_compare
    overrides = {**budget.policy_overrides(backbone), **cfg.recipe_overrides}
    recipe = build_recipe(name, backbone=backbone, overrides=overrides)
    run = train_policy(
        recipe, cfg.data, out / "runs" / name, train_overrides=budget.train_overrides(cfg.seed)
    )
    results: dict[str, dict] = {
        "train": {"final_loss": run.result.final_loss, "samples_per_s": run.result.samples_per_s}
    }
    for condition in cfg.conditions:
        result = evaluate(
            str(run.policy_dir),
            [cfg.suite],
            budget.eval_episodes,
            budget.chunk_exec,
            condition_perturbations(condition),
            out=out / "eval" / name / condition,
            workers=cfg.workers,
            envs_per_worker=budget.envs_per_worker,
            seed=eval_seed(cfg.seed),  # the same held-out initial states for every recipe
            videos=1,
            image_size=budget.image_size,
            tasks=cfg.tasks,
            env_kwargs={"layout": cfg.layout},
            device=cfg.device,
            quiet=True,
        )
        results[condition] = result.to_dict()
    if cfg.heldout is not None:
        from vlaworks.eval.offline import action_error

        results["offline"] = action_error(run.policy_dir, cfg.heldout)
    if cfg.probes:
        results.update(representation(run.policy_dir, out / "probe" / name, cfg.probes, budget.image_size))
    return results


def _init_recipe_process(parent_pid: int, processes: int) -> None:
    """A killed `vlaworks compare` leaves no recipe training; recipes share the cores."""
    exit_with_parent(parent_pid)
    share_cores(processes)


def run_compare(cfg: CompareConfig) -> dict[str, dict[str, dict]]:
    """Run every recipe (in ``cfg.parallel`` processes), write ``table.md`` and ``results.json``."""
    from vlaworks.train.pretrain import resolve_vlm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    resolve_vlm(cfg.vlm, cfg.budget)  # pretrain (or find) the shared VLM before any recipe needs it
    if cfg.parallel > 1:
        with ProcessPoolExecutor(
            cfg.parallel,
            mp_context=mp.get_context("spawn"),
            initializer=_init_recipe_process,
            initargs=(os.getpid(), cfg.parallel),
        ) as pool:
            futures = {name: pool.submit(run_recipe, cfg, name) for name in cfg.recipes}
            results = {name: f.result() for name, f in futures.items()}
    else:
        results = {name: run_recipe(cfg, name) for name in cfg.recipes}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    (out / "results.json").write_text(json.dumps({"config": settings, "results": results}, indent=1) + "\n")
    b = cfg.budget
    conditions = ", ".join(f"{c} = {' + '.join(CONDITIONS[c]) or 'no perturbation'}" for c in cfg.conditions)
    (out / "table.md").write_text(
        f"# {cfg.suite} suite: success % [95% CI], {b.eval_episodes} episodes per task\n\n"
        + protocol_table(results, cfg.conditions)
        + f"\nConditions: {conditions}.\n"
        + f"Shared settings: {b.backbone}, cameras {list(b.cameras)}, {b.image_size} px, "
        f"patch {b.patch_size} (merge {b.token_merge}), chunk {b.chunk} ({b.chunk_exec} execution), "
        f"{b.steps} steps x batch {b.batch_size}, lr {b.lr}, seed {cfg.seed}; data {cfg.data}.\n"
        + (f"Held-out open-loop error on {cfg.heldout} (normalised units).\n" if cfg.heldout else "")
    )
    if cfg.probes:
        (out / "representation.md").write_text(
            "# Representation before -> after VLA training: accuracy %\n\n"
            + representation_table(results)
            + f"\nVQA: {cfg.probes} held-out generated questions (captions, pointing, boxes, spatial). "
            "Probes: linear classifiers on mask-pooled patch features of held-out scenes; "
            "'before' is the backbone every recipe started from.\n"
        )
    return results

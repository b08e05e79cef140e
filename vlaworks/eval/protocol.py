"""One comparison protocol: several recipes, the same data, budget and evaluation conditions.

``run_protocol`` trains every recipe on one dataset with the same shared settings (image
size, patch size, chunk, cameras, steps, batch size, learning rate, seed), then evaluates
each trained policy closed-loop on the same seeded episodes under named *conditions*
(seed 004 Tables II-IV):

* ``clean``: the training distribution (SimplerEnv "visual matching");
* ``masked``: background masking, everything but the objects and the gripper blanked;
* ``variant``: visual variant aggregation, new table / floor textures, lighting, extra
  distractors and a moved base camera at once;
* ``paraphrase``: instructions from held-out paraphrase templates never seen in training.

It writes ``OUT/table.md`` (success with 95 % Wilson intervals, one row per recipe, one
column per condition) and ``OUT/results.json``; each recipe keeps its own run folder
``OUT/runs/<recipe>`` (resumable) and reports ``OUT/eval/<recipe>/<condition>``. With
``parallel > 1`` recipes run in that many spawned processes (one GPU serves them all).

With ``heldout`` (a dataset of demonstrations none of the recipes trained on) the table
gains each policy's open-loop action error there (``vlaworks.eval.offline``), a score
that still ranks recipes where closed-loop success is at the floor.

With ``probes > 0`` every trained policy also gets seed 004's representation measurements
(Fig. 4-5) against the backbone it started from: a linear probe of its vision features
(object kind and colour; a dual encoder's frozen and trained halves separately) and VQA
accuracy on ``probes`` held-out generated questions, in ``OUT/representation.md``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlaworks.eval.report import rate_cell
from vlaworks.eval.results import EvalResult

#: condition name -> perturbations ("FAMILY:SEVERITY") applied at evaluation
CONDITIONS: dict[str, tuple[str, ...]] = {
    "clean": (),
    "masked": ("mask_background:1",),
    "variant": ("background:0.6", "lighting:0.6", "layout:0.67", "camera:0.3"),
    "paraphrase": ("language:1",),
}


def condition_perturbations(name: str) -> tuple[str, ...]:
    """The perturbations of condition ``name``; a clear error for an unknown one."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown evaluation condition {name!r}; choose from {sorted(CONDITIONS)}")
    return CONDITIONS[name]


@dataclass
class ProtocolConfig:
    """Everything the comparison holds fixed across recipes."""

    recipes: tuple[str, ...]
    data: Path
    suite: str
    out: Path
    layout: str = "random"
    conditions: tuple[str, ...] = ("clean", "masked", "variant", "paraphrase")
    backbone: str = "prismatic-tiny"
    cameras: tuple[str, ...] = ("base",)
    image_size: int = 64
    patch_size: int = 8
    chunk: int = 8
    steps: int = 2000
    batch_size: int = 32
    lr: float = 5e-4
    eval_episodes: int = 10
    tasks: tuple[str, ...] | None = None
    chunk_exec: str = "full"
    workers: int = 1
    envs_per_worker: int = 5
    parallel: int = 1
    device: str | None = None
    mixed_precision: str = "no"
    seed: int = 0
    heldout: Path | None = None
    probes: int = 0
    recipe_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from vlaworks.recipes import recipe_names

        unknown = [r for r in self.recipes if r not in recipe_names()]
        if unknown or not self.recipes:
            raise ValueError(f"unknown recipe(s) {unknown or '(none given)'}; choose from {recipe_names()}")
        for c in self.conditions:
            condition_perturbations(c)


def run_recipe(cfg: ProtocolConfig, name: str) -> dict[str, dict]:
    """Train ``name`` under ``cfg`` (resuming) and evaluate it under every condition."""
    from vlaworks.eval.run import evaluate
    from vlaworks.train.pipeline import budget_overrides, build_recipe, train_policy, view_overrides

    out = Path(cfg.out)
    recipe = build_recipe(
        name,
        backbone=cfg.backbone,
        overrides={
            **view_overrides(cfg.cameras, cfg.image_size, cfg.patch_size, cfg.chunk),
            **cfg.recipe_overrides,
        },
    )
    run = train_policy(
        recipe,
        cfg.data,
        out / "runs" / name,
        train_overrides=budget_overrides(
            cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, mixed_precision=cfg.mixed_precision
        ),
    )
    results: dict[str, dict] = {"train": {"final_loss": run.result.final_loss,
                                          "samples_per_s": run.result.samples_per_s}}
    for condition in cfg.conditions:
        result = evaluate(
            str(run.policy_dir),
            [cfg.suite],
            cfg.eval_episodes,
            cfg.chunk_exec,
            condition_perturbations(condition),
            out=out / "eval" / name / condition,
            workers=cfg.workers,
            envs_per_worker=cfg.envs_per_worker,
            seed=cfg.seed + 10_000,  # held-out initial states; the same for every recipe
            videos=1,
            image_size=cfg.image_size,
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
        results.update(representation(run.policy_dir, out / "probe" / name, cfg.probes, cfg.image_size))
    return results


def representation(policy_dir: Path, out: Path, questions: int, image_size: int) -> dict[str, dict]:
    """Linear probe and VQA of a trained policy against its initial backbone (seed 004
    Fig. 4-5), at the policy's image size; reports in ``out``."""
    from vlaworks.eval.probes import run_probe_comparison
    from vlaworks.eval.vqa import run_vqa_comparison

    out.mkdir(parents=True, exist_ok=True)
    probe = run_probe_comparison(policy_dir, out / "probe.md", image_size=image_size)
    vqa = run_vqa_comparison(policy_dir, out / "vqa.md", n=questions, image_size=image_size)
    return {"probe": {k: probe[k] for k in ("before", "after")}, "vqa": vqa}


def representation_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: per recipe, VQA accuracy and linear-probe accuracy (object kind, colour)
    before -> after VLA training; a dual encoder's frozen half is shown apart."""
    from vlaworks.eval.probes import starting_features

    tasks = ("kind", "color")
    head = ["VQA"] + [f"{t} probe" for t in tasks] + [f"{t} probe, frozen half" for t in tasks]
    lines = ["| recipe | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    for name, per in results.items():
        vqa, before, after = per["vqa"], per["probe"]["before"], per["probe"]["after"]
        start = starting_features(before)
        trained = after.get("trained", after.get("vision", next(iter(after.values()))))
        frozen = after.get("frozen", {})
        cells = [f"{pct(vqa['before']['overall'])} -> {pct(vqa['after']['overall'])}"]
        cells += [f"{pct(start.get(t))} -> {pct(trained.get(t))}" for t in tasks]
        cells += [pct(frozen.get(t)) for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def protocol_table(results: dict[str, dict[str, dict]], conditions: Sequence[str]) -> str:
    """Markdown: one row per recipe, success % [95 % CI] (n) per condition, the final train
    loss and, when measured, the held-out open-loop error (translation / rotation L1, gripper
    sign agreement %)."""
    offline = all("offline" in per for per in results.values())
    extra = ["final loss"] + (["held-out L1 xyz / rot, gripper %"] if offline else [])
    head = "| recipe | " + " | ".join([*conditions, *extra]) + " |"
    lines = [head, "|" + "---|" * (len(conditions) + len(extra) + 1)]
    for name, per in results.items():
        cells = [rate_cell(EvalResult.from_dict(per[c]).overall()) for c in conditions]
        cells.append(f"{per['train']['final_loss']:.4f}")
        if offline:
            o = per["offline"]
            cells.append(
                f"{o['translation_l1']:.3f} / {o['rotation_l1']:.3f}, {100 * o['gripper_agreement']:.1f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_protocol(cfg: ProtocolConfig) -> dict[str, dict[str, dict]]:
    """Run every recipe (in ``cfg.parallel`` processes), write ``table.md`` and ``results.json``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.parallel > 1:
        with ProcessPoolExecutor(cfg.parallel, mp_context=mp.get_context("spawn")) as pool:
            futures = {name: pool.submit(run_recipe, cfg, name) for name in cfg.recipes}
            results = {name: f.result() for name, f in futures.items()}
    else:
        results = {name: run_recipe(cfg, name) for name in cfg.recipes}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    (out / "results.json").write_text(json.dumps({"config": settings, "results": results}, indent=1) + "\n")
    conditions = ", ".join(f"{c} = {' + '.join(CONDITIONS[c]) or 'no perturbation'}" for c in cfg.conditions)
    (out / "table.md").write_text(
        f"# {cfg.suite} suite: success % [95% CI], {cfg.eval_episodes} episodes per task\n\n"
        + protocol_table(results, cfg.conditions)
        + f"\nConditions: {conditions}.\n"
        + f"Shared settings: {cfg.backbone}, cameras {list(cfg.cameras)}, {cfg.image_size} px, "
        f"patch {cfg.patch_size}, chunk {cfg.chunk}, {cfg.steps} steps x batch {cfg.batch_size}, "
        f"lr {cfg.lr}, seed {cfg.seed}; data {cfg.data}.\n"
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

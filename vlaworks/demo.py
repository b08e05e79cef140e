"""``vlaworks demo``: the main job on the built-in default, end to end on a CPU.

generate expert demonstrations in the tabletop world -> train VLM4VLA with a proprio token
(``vlm4vla+proprio``) on a tiny Prismatic VLM -> evaluate the policy and the scripted expert
on the same seeded episodes -> write a side-by-side report. Every stage reuses what an earlier run already
wrote (the dataset, resumable training checkpoints), so an interrupted demo picks up
where it stopped. The recipe is built before the data, so a recipe that reads the world's
segmentation (PokeVLA's ``<SEG>`` rows) gets a dataset recorded with it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from vlaworks.data.lerobot import DatasetError, LeRobotDataset
from vlaworks.miniature import MINIATURE, MiniatureBudget, eval_seed


@dataclass
class DemoConfig:
    """The built-in default; ``vlaworks demo`` exposes its main fields as options."""

    out: Path = Path("runs/demo")
    suite: str = "spatial"
    #: LIBERO's protocol: each task keeps one layout, jittered per episode ("random": anywhere)
    layout: str = "fixed"
    episodes: int = 120
    recipe: str = "vlm4vla+proprio"
    #: model size, training budget and evaluation settings (the miniature world's)
    budget: MiniatureBudget = MINIATURE
    workers: int = 2
    seed: int = 0
    #: start from the budget's backbone as built (``"random"``) or from the cached VLM pretrained
    #: on it (``"pretrained"``, :func:`vlaworks.train.pretrain.resolve_vlm`)
    vlm: str = "random"
    #: dotted ``policy.*`` / ``cotrain.*`` recipe overrides and ``train.*`` trainer overrides
    #: (``vlaworks demo --set KEY=VALUE``), applied after the budget
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from vlaworks.sim.tasks import check_layout, suite_tasks
        from vlaworks.train.pretrain import check_vlm

        # before the data stage (and its folder), not after it
        suite_tasks(self.suite)
        check_layout(self.layout)
        check_vlm(self.vlm)


DATA_SETTINGS = "data_settings.json"


def _data_settings(cfg: DemoConfig, segmentation: bool = False) -> dict:
    """What the demo's dataset depends on; a dataset made with other settings is regenerated.
    ``segmentation`` (recorded only when on, so older datasets keep their settings) adds the
    world's segmentation, which a dataset without it lacks and one with it merely adds to."""
    settings = {
        "suite": cfg.suite,
        "layout": cfg.layout,
        "image_size": cfg.budget.image_size,
        "seed": cfg.seed,
    }
    return settings | ({"segmentation": True} if segmentation else {})


def _dataset_ready(path: Path, cfg: DemoConfig, segmentation: bool = False) -> bool:
    settings = path.parent / DATA_SETTINGS
    try:
        stored = json.loads(settings.read_text())
        usable = [_data_settings(cfg, True)] + ([] if segmentation else [_data_settings(cfg)])
        return stored in usable and LeRobotDataset(path).num_episodes >= cfg.episodes
    except (DatasetError, FileNotFoundError, json.JSONDecodeError):
        return False


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns (and writes to ``out/demo.json``) the measured numbers."""
    from vlaworks.eval.report import compare_report
    from vlaworks.eval.run import evaluate
    from vlaworks.sim.generate import generate
    from vlaworks.train.pipeline import build_recipe, split_overrides, train_policy

    budget = cfg.budget
    console = Console()
    out = Path(cfg.out)
    # a run from the pretrained VLM has its own folder, so neither resumes the other's checkpoints
    data_dir, run_dir = out / "data", out / ("run" if cfg.vlm == "random" else f"run-{cfg.vlm}-vlm")
    timings: dict[str, float] = {}

    backbone = budget.backbone
    if cfg.vlm != "random":
        from vlaworks.train.pretrain import resolve_vlm

        console.rule(f"VLM: {cfg.vlm} {budget.backbone} (cached after the first run)")
        t = time.perf_counter()
        backbone = resolve_vlm(cfg.vlm, budget)
        timings["pretrain_s"] = time.perf_counter() - t
        console.print(f"VLM at {backbone}")
    recipe_sets, train_sets = split_overrides(cfg.overrides)
    overrides = {**budget.policy_overrides(backbone), **recipe_sets}
    recipe = build_recipe(cfg.recipe, backbone=backbone, overrides=overrides)
    segmentation = recipe.policy.reads_target_masks

    console.rule(
        f"1/3 data: {cfg.episodes} demonstrations, {cfg.suite!r} suite, {cfg.layout} layouts"
        + (", with segmentation" if segmentation else "")
    )
    t = time.perf_counter()
    reuse_data = _dataset_ready(data_dir, cfg, segmentation)
    if reuse_data:
        console.print(f"reusing {data_dir}")
    else:
        generate(
            suites=[cfg.suite],
            episodes=cfg.episodes,
            out=data_dir,
            seed=cfg.seed,
            image_size=budget.image_size,
            overwrite=True,
            layout=cfg.layout,
            segmentation=segmentation,
        )
        (out / DATA_SETTINGS).write_text(json.dumps(_data_settings(cfg, segmentation)) + "\n")
    timings["generate_s"] = time.perf_counter() - t

    console.rule(f"2/3 train: {cfg.recipe} on {budget.backbone}, {budget.steps} steps")
    t = time.perf_counter()
    run = train_policy(
        recipe,
        data_dir,
        run_dir,
        train_overrides=budget.train_overrides(cfg.seed) | train_sets,
        resume=reuse_data,  # a run of the old dataset cannot resume on a regenerated one
    )
    timings["train_s"] = time.perf_counter() - t

    console.rule(f"3/3 evaluate: policy and scripted expert, {budget.eval_episodes} episodes per task")
    t = time.perf_counter()
    common = dict(
        suites=[cfg.suite],
        episodes=budget.eval_episodes,
        chunk_exec=budget.chunk_exec,
        workers=cfg.workers,
        envs_per_worker=budget.envs_per_worker,
        seed=eval_seed(cfg.seed),  # held-out initial states, apart from the data's and training's seeds
        videos=1,
        image_size=budget.image_size,
        env_kwargs={"layout": cfg.layout},
    )
    policy_result = evaluate(str(run.policy_dir), out=out / "eval_policy", **common)
    expert_result = evaluate("expert", out=out / "eval_expert", **common)
    timings["eval_s"] = time.perf_counter() - t
    paths = compare_report(
        [policy_result, expert_result],
        [f"{cfg.recipe} ({budget.backbone})", "scripted expert"],
        out,
        title=f"vlaworks demo: {cfg.suite} suite",
    )
    p, e = policy_result.overall(), expert_result.overall()
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "policy_success": p.rate,
        "policy_ci": [p.ci_low, p.ci_high],
        "expert_success": e.rate,
        "expert_ci": [e.ci_low, e.ci_high],
        "relative_to_expert": p.rate / e.rate if e.rate else None,
        "final_loss": run.result.final_loss,
        "train_samples_per_s": run.result.samples_per_s,
        "timings_s": timings,
        "report": str(paths["markdown"]),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    console.rule("result")
    console.print(
        f"[bold]success rate: policy {100 * p.rate:.1f}% [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}] "
        f"(n={p.n})  vs  expert {100 * e.rate:.1f}% [{100 * e.ci_low:.1f}, {100 * e.ci_high:.1f}] "
        f"(n={e.n})[/bold]"
    )
    if e.rate:
        console.print(f"[bold]the policy reaches {100 * p.rate / e.rate:.1f}% of the expert's success[/bold]")
    console.print(f"report: {paths['markdown']}  (times: " + ", ".join(
        f"{k} {v:.0f}" for k, v in timings.items()) + ")")
    return summary

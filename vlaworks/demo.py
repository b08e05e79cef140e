"""``vlaworks demo``: the main job on the built-in default, end to end on a CPU.

generate expert demonstrations in the tabletop world -> train VLM4VLA with a proprio token
(``vlm4vla+proprio``) on a tiny Prismatic VLM -> evaluate the policy and the scripted expert
on the same seeded episodes -> write a side-by-side report. Every stage reuses what an earlier run already
wrote (the dataset, resumable training checkpoints), so an interrupted demo picks up
where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from vlaworks.data.lerobot import DatasetError, LeRobotDataset


@dataclass
class DemoConfig:
    """The built-in default; every field is a ``vlaworks demo`` option."""

    out: Path = Path("runs/demo")
    suite: str = "spatial"
    #: LIBERO's protocol: each task keeps one layout, jittered per episode ("random": anywhere)
    layout: str = "fixed"
    episodes: int = 120
    recipe: str = "vlm4vla+proprio"
    backbone: str = "prismatic-tiny"
    cameras: tuple[str, ...] = ("base", "wrist")
    image_size: int = 64
    patch_size: int = 8
    #: k x k patches per LM token (prismatic patch merger): 4x fewer image tokens
    token_merge: int = 2
    #: training-time random shift in pixels (0: off)
    shift: int = 4
    attn_implementation: str = "eager"
    #: "auto": bf16 autocast where the CPU / GPU has native bf16, else fp32
    mixed_precision: str = "auto"
    chunk: int = 8
    steps: int = 6000
    batch_size: int = 32
    lr: float = 5e-4
    eval_episodes: int = 10
    #: ACT temporal ensembling (BENCHMARKS.md: 86.7 % vs 83.3 % for "full" on a 6000-step policy)
    chunk_exec: str = "ensemble"
    workers: int = 2
    envs_per_worker: int = 5
    seed: int = 0
    #: dotted ``policy.*`` / ``cotrain.*`` recipe overrides and ``train.*`` trainer overrides
    #: (``vlaworks demo --set KEY=VALUE``), applied after the defaults above
    overrides: dict = field(default_factory=dict)


DATA_SETTINGS = "data_settings.json"


def _data_settings(cfg: DemoConfig) -> dict:
    """What the demo's dataset depends on; a dataset made with other settings is regenerated."""
    return {"suite": cfg.suite, "layout": cfg.layout, "image_size": cfg.image_size, "seed": cfg.seed}


def _dataset_ready(path: Path, cfg: DemoConfig) -> bool:
    settings = path.parent / DATA_SETTINGS
    try:
        same = json.loads(settings.read_text()) == _data_settings(cfg)
        return same and LeRobotDataset(path).num_episodes >= cfg.episodes
    except (DatasetError, FileNotFoundError, json.JSONDecodeError):
        return False


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns (and writes to ``out/demo.json``) the measured numbers."""
    from vlaworks.eval.report import compare_report
    from vlaworks.eval.run import evaluate
    from vlaworks.sim.generate import generate
    from vlaworks.train.config import default_mixed_precision
    from vlaworks.train.pipeline import (
        budget_overrides,
        build_recipe,
        split_overrides,
        train_policy,
        view_overrides,
    )

    console = Console()
    out = Path(cfg.out)
    data_dir, run_dir = out / "data", out / "run"
    timings: dict[str, float] = {}

    console.rule(f"1/3 data: {cfg.episodes} demonstrations, {cfg.suite!r} suite, {cfg.layout} layouts")
    t = time.perf_counter()
    reuse_data = _dataset_ready(data_dir, cfg)
    if reuse_data:
        console.print(f"reusing {data_dir}")
    else:
        generate(
            suites=[cfg.suite],
            episodes=cfg.episodes,
            out=data_dir,
            seed=cfg.seed,
            image_size=cfg.image_size,
            overwrite=True,
            layout=cfg.layout,
        )
        (out / DATA_SETTINGS).write_text(json.dumps(_data_settings(cfg)) + "\n")
    timings["generate_s"] = time.perf_counter() - t

    console.rule(f"2/3 train: {cfg.recipe} on {cfg.backbone}, {cfg.steps} steps")
    t = time.perf_counter()
    recipe_sets, train_sets = split_overrides(cfg.overrides)
    recipe = build_recipe(
        cfg.recipe,
        backbone=cfg.backbone,
        overrides={
            **view_overrides(
                cfg.cameras, cfg.image_size, cfg.patch_size, cfg.chunk, token_merge=cfg.token_merge,
                shift=cfg.shift, attn_implementation=cfg.attn_implementation,
            ),
            **recipe_sets,
        },
    )
    precision = default_mixed_precision() if cfg.mixed_precision == "auto" else cfg.mixed_precision
    run = train_policy(
        recipe,
        data_dir,
        run_dir,
        train_overrides=budget_overrides(
            cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, checkpoints=5, mixed_precision=precision
        ) | train_sets,
        resume=reuse_data,  # a run of the old dataset cannot resume on a regenerated one
    )
    timings["train_s"] = time.perf_counter() - t

    console.rule(f"3/3 evaluate: policy and scripted expert, {cfg.eval_episodes} episodes per task")
    t = time.perf_counter()
    common = dict(
        suites=[cfg.suite],
        episodes=cfg.eval_episodes,
        chunk_exec=cfg.chunk_exec,
        workers=cfg.workers,
        envs_per_worker=cfg.envs_per_worker,
        seed=cfg.seed + 10_000,  # held-out initial states: training episodes used seeds from cfg.seed
        videos=1,
        image_size=cfg.image_size,
        env_kwargs={"layout": cfg.layout},
    )
    policy_result = evaluate(str(run.policy_dir), out=out / "eval_policy", **common)
    expert_result = evaluate("expert", out=out / "eval_expert", **common)
    timings["eval_s"] = time.perf_counter() - t
    paths = compare_report(
        [policy_result, expert_result],
        [f"{cfg.recipe} ({cfg.backbone})", "scripted expert"],
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

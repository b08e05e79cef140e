"""One entry point: ``vlaworks generate | render | check | annotate | pretrain | train | eval | serve |
compare | probe | recipes | demo``.

Each command is a thin shell over a library function, so everything the CLI does is
also a Python call. Heavy imports happen inside the commands to keep ``--help`` fast.
Option values are validated where they are parsed (counts >= 1, sizes >= 1, rates > 0,
non-empty lists), and an expected error exits with status 2 and a one-line message
(:mod:`vlaworks.cli_errors`); ``--debug`` or ``VLAWORKS_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlaworks.allocator import tune_malloc
from vlaworks.cli_errors import DEBUG_ENV, ErrorReportingGroup, show_warnings
from vlaworks.miniature import MINIATURE, MINIATURE_PRETRAIN, MIXED_PRECISION

HELP = "vlaworks: turn vision-language models into robot policies; train, evaluate, compare."
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP, cls=ErrorReportingGroup)


def _positive(value: float | None) -> float | None:
    """Callback for rates such as --lr: a finite number > 0 (unset stays unset)."""
    if value is not None and not 0 < value < float("inf"):
        raise typer.BadParameter(f"must be a number > 0; got {value}.")
    return value


def _name_list(value: str | None) -> str | None:
    """Callback for comma lists such as --cameras base,wrist: no empty or repeated names."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise typer.BadParameter(f"give distinct names separated by commas (e.g. base,wrist); got {value!r}.")
    return ",".join(names)


Seed = Annotated[int, typer.Option(min=0, help="Random seed (>= 0).")]
Vlm = Annotated[
    str,
    typer.Option(
        help="random: the backbone's own (random) weights | pretrained: the VLM `vlaworks pretrain` makes "
        "of it with its default settings on the demo's architecture (cached; pretrained on first use)."
    ),
]
ImageSize = Annotated[int, typer.Option(min=1, help="Square image size in pixels.")]


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show full tracebacks (also: {DEBUG_ENV}=1).")
    ] = False,
) -> None:
    """vlaworks: turn vision-language models into robot policies; train, evaluate, compare."""
    show_warnings()
    tune_malloc()  # process-wide; commands that allocate little are unaffected

PerturbOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--perturb",
        help="FAMILY\\[@CALIBRATION]:SEVERITY, repeatable (e.g. lighting:0.5, camera:1.0; camera@v1:0.3 "
        "for the pre-LIBERO-Plus ranges).",
    ),
]
LayoutOpt = Annotated[
    str, typer.Option(help="random (anywhere on the table) | fixed (LIBERO: one layout per task, jittered).")
]


EnvOpt = Annotated[
    str, typer.Option(help="Environment: tabletop (built in) | metaworld (suite mt10; needs `metaworld`).")
]


def _tabletop_only(env: str, **given: bool) -> None:
    """Reject the options only the tabletop world has when another environment is chosen."""
    used = [f"--{name.replace('_', '-')}" for name, on in given.items() if on]
    if env != "tabletop" and used:
        raise typer.BadParameter(
            f"{', '.join(used)} exist only for --env tabletop; drop them for --env {env}."
        )


@app.command()
def generate(
    suite: Annotated[
        list[str],
        typer.Option(help="Task suite(s): spatial, object, goal, long, ambiguous; mt10 (metaworld)."),
    ],
    episodes: Annotated[int, typer.Option(min=1, help="Demonstrations per suite (metaworld: per task).")],
    out: Annotated[Path, typer.Option(help="Dataset folder to write (LeRobotDataset v3 layout).")],
    seed: Seed = 0,
    image_size: ImageSize = 128,
    perturb: PerturbOpt = None,
    depth: Annotated[bool, typer.Option(help="Also store depth and segmentation per camera.")] = False,
    segmentation: Annotated[
        bool,
        typer.Option(help="Also store ground-truth segmentation per camera and the target's id (no depth)."),
    ] = False,
    noise: Annotated[
        float, typer.Option(min=0.0, help="Scripted expert's action noise (std, action units).")
    ] = 0.1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it holds a dataset (anything else is never deleted).")
    ] = False,
    layout: LayoutOpt = "random",
    render_check: Annotated[Path | None, typer.Option(help="Also write a PNG of base + wrist views.")] = None,
    env: EnvOpt = "tabletop",
    task: Annotated[
        list[str] | None, typer.Option(help="Only these task(s) of the suite, e.g. reach-v3 (metaworld).")
    ] = None,
) -> None:
    """Roll out the scripted expert and write a dataset; print per-suite success and steps/s."""
    if env == "metaworld":
        _tabletop_only(
            env,
            perturb=bool(perturb),
            depth=depth,
            segmentation=segmentation,
            layout=layout != "random",
            render_check=render_check is not None,
        )
        if len(suite) != 1:
            raise typer.BadParameter(
                f"--env metaworld writes one suite at a time (e.g. --suite mt10); got {suite}."
            )
        from vlaworks.envs.metaworld_data import generate as generate_metaworld

        generate_metaworld(
            suite[0],
            episodes,
            out,
            tasks=task,
            seed=seed,
            image_size=image_size,
            noise=noise,
            overwrite=overwrite,
        )
        return
    if env != "tabletop":
        raise typer.BadParameter(
            f"--env must be tabletop or metaworld to generate demonstrations; got {env!r}."
        )
    if task:
        raise typer.BadParameter("--task exists only for --env metaworld; tabletop suites cycle their tasks.")
    from vlaworks.sim.generate import generate as run_generate
    from vlaworks.sim.render_check import render_check as run_render_check

    run_generate(
        suites=suite,
        episodes=episodes,
        out=out,
        seed=seed,
        image_size=image_size,
        perturb=perturb or [],
        depth=depth,
        noise=noise,
        overwrite=overwrite,
        layout=layout,
        segmentation=segmentation,
    )
    if render_check is not None:
        run_render_check(
            render_check, suite=suite[0], seed=seed, image_size=image_size, perturb=perturb or []
        )


@app.command()
def render(
    out: Annotated[Path, typer.Option(help="PNG to write.")],
    suite: str = "spatial",
    seed: Seed = 0,
    image_size: ImageSize = 256,
    perturb: PerturbOpt = None,
) -> None:
    """Write a picture of the base and wrist views (and depth / segmentation) of one scene."""
    from vlaworks.sim.render_check import render_check

    render_check(out, suite=suite, seed=seed, image_size=image_size, perturb=perturb or [])


@app.command()
def check(
    data: Annotated[Path, typer.Argument(help="Dataset folder (LeRobotDataset v3 layout).")],
    recompute_stats: Annotated[
        bool, typer.Option(help="First rewrite meta/stats.json from the data files.")
    ] = False,
) -> None:
    """Integrity pass over a dataset: metadata, files, video frame counts, finite statistics,
    actions and state. Lists each problem with its file, episodes and fix; exits 2 if any."""
    from vlaworks.data.check import check_dataset
    from vlaworks.data.check import recompute_stats as recompute

    if recompute_stats:
        typer.echo(f"rewrote {recompute(data)}")
    report = check_dataset(data)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}", err=True)
    if not report.ok:
        typer.echo(f"error: {len(report.problems)} problem(s) in {data}; fix them before training.", err=True)
        raise typer.Exit(2)
    typer.echo(f"ok: {data} ({report.episodes} episodes, {report.frames} frames) passes the integrity check")


@app.command()
def annotate(
    data: Annotated[Path, typer.Argument(help="Dataset folder to annotate (LeRobotDataset v3 layout).")],
    out: Annotated[Path, typer.Option(help="Folder for the annotated copy (a new folder or a dataset).")],
    backend: Annotated[
        str,
        typer.Option(
            help="Segmenter: oracle | classical | sam:PATH | owlv2:PATH+sam:PATH | "
            "grounding-dino:PATH+sam:PATH."
        ),
    ] = "classical",
    camera: Annotated[str, typer.Option(help="Camera to annotate (short name or full key).")] = "base",
    margin: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Proposal growth per side, fraction of the image side.")
    ] = 0.1,
    gripper: Annotated[
        str, typer.Option(help="Gripper mask: auto | oracle (world segmentation) | motion (static camera).")
    ] = "auto",
    phrase: Annotated[str, typer.Option(help="Target phrase: rules | lm:PATH (causal LM folder).")] = "rules",
    points: Annotated[int, typer.Option(min=1, help="Random points per mask.")] = 3,
    min_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Discard masks less confident than this.")
    ] = 0.3,
    max_fill: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Discard masks covering more of the proposal than this.")
    ] = 0.9,
    seed: Seed = 0,
    device: Annotated[str, typer.Option(help="Torch device of the learned backends.")] = "cpu",
    report: Annotated[Path | None, typer.Option(help="Also write the report as markdown here.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it holds a dataset (anything else is never deleted).")
    ] = False,
) -> None:
    """Seed 000's annotation pipeline: copy DATA to OUT with per-episode target masks and visual
    prompts (meta/annotations.parquet); print kept fraction, IoU against ground truth, episodes/s."""
    from vlaworks.annotate.pipeline import AnnotateSettings, annotate_dataset, report_markdown

    settings = AnnotateSettings(
        backend=backend,
        camera=camera,
        margin=margin,
        gripper=gripper,
        phrase=phrase,
        points=points,
        min_confidence=min_confidence,
        max_fill=max_fill,
        seed=seed,
        device=device,
    )
    result = annotate_dataset(data, out, settings, overwrite=overwrite)
    text = report_markdown(result)
    typer.echo(f"annotated {result['out']} ({result['camera']} camera)\n{text}", nl=False)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text)


def _parse_sets(
    items: list[str] | None, option: str = "--set", example: str = "policy.chunk_size=8"
) -> dict[str, object]:
    """``KEY=VALUE`` pairs (VALUE parsed as JSON when it parses, else kept as a string)."""
    import json

    parsed: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{option} expects KEY=VALUE (e.g. {example}); got {item!r}.")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@app.command()
def train(
    recipe: Annotated[str, typer.Option(help="Recipe name (see `vlaworks recipes`).")],
    data: Annotated[Path, typer.Option(help="Dataset folder (LeRobotDataset v3 layout).")],
    out: Annotated[Path, typer.Option(help="Run folder; re-running resumes from its last checkpoint.")],
    backbone: Annotated[
        str | None,
        typer.Option(help="prismatic-tiny | qwen2.5-vl-tiny | paligemma-tiny | kosmos2-tiny | PATH"),
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Samples per step (per process).")] = None,
    lr: Annotated[float | None, typer.Option(callback=_positive, help="Peak learning rate.")] = None,
    freeze: Annotated[str | None, typer.Option(help="Comma list: vision, embeddings.")] = None,
    from_scratch: Annotated[bool, typer.Option(help="Re-initialise every VLM weight.")] = False,
    vlm: Vlm = "random",
    lora: Annotated[
        int | None, typer.Option(min=1, help="LoRA rank on the LM (full fine-tune if unset).")
    ] = None,
    cameras: Annotated[
        str | None, typer.Option(callback=_name_list, help="Comma list of camera views, e.g. base,wrist.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(min=1, help="Square image size in pixels.")] = None,
    save_every: Annotated[
        int | None, typer.Option(min=0, help="Checkpoint every N steps (0: only at the end).")
    ] = None,
    seed: Seed = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override: policy.chunk_size=8, train.lr=1e-4, cotrain.vl_fraction=0.5"),
    ] = None,
    fresh: Annotated[
        bool, typer.Option(help="Start a new run in OUT, replacing the files an earlier run wrote there.")
    ] = False,
    reuse_stages: Annotated[
        Path | None,
        typer.Option(
            help="Staged recipes: copy the leading stages this run folder finished with the same "
            "configuration on the same data (e.g. the vla stage of PixelVLA's Table 4 rows)."
        ),
    ] = None,
) -> None:
    """Train a recipe on a dataset; writes RUN/policy and resumable RUN/checkpoints."""
    from vlaworks.train.pipeline import build_recipe, split_overrides, train_policy

    overrides = _parse_sets(set_)
    freezes = {f.strip() for f in (freeze or "").split(",") if f.strip()}
    unknown = freezes - {"vision", "embeddings"}
    if unknown:
        raise typer.BadParameter(f"--freeze takes vision and/or embeddings; got {sorted(unknown)}.")
    overrides |= {"policy.freeze_vision": True} if "vision" in freezes else {}
    overrides |= {"policy.freeze_word_embeddings": True} if "embeddings" in freezes else {}
    overrides |= {"policy.from_scratch": True} if from_scratch else {}
    if lora is not None:
        overrides |= {"policy.lora.enabled": True, "policy.lora.r": lora, "policy.lora.alpha": 2 * lora}
    overrides |= {"policy.cameras": cameras.split(",")} if cameras is not None else {}
    overrides |= {"policy.image_size": image_size} if image_size is not None else {}
    recipe_sets, train_sets = split_overrides(overrides)
    for key, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("save_every", save_every)):
        if value is not None:
            train_sets[key] = value
    train_sets["seed"] = seed
    if vlm != "random":
        from vlaworks.train.pretrain import resolve_vlm

        if backbone is not None and Path(backbone).is_dir():
            raise typer.BadParameter(f"--backbone {backbone} is a folder, a VLM already; drop --vlm {vlm}.")
        backbone = resolve_vlm(vlm, MINIATURE, backbone or build_recipe(recipe).policy.backbone)
    run = train_policy(
        build_recipe(recipe, backbone=backbone, overrides=recipe_sets),
        data,
        out,
        train_overrides=train_sets,
        resume=not fresh,
        reuse=reuse_stages,
    )
    if run.reused:
        typer.echo(f"reused stage(s) {', '.join(run.reused)} from {reuse_stages}")
    result = run.result
    if not result.losses:
        typer.echo(
            f"{out} had already trained {run.recipe.name} for {result.steps} steps (final loss "
            f"{result.final_loss:.4f}); raise --steps to train on. Policy at {run.policy_dir}"
        )
        return
    typer.echo(
        f"trained {run.recipe.name} for {result.steps} steps: final loss {result.final_loss:.4f}, "
        f"{result.samples_per_s:.1f} samples/s; policy at {run.policy_dir}"
    )


@app.command("eval")
def evaluate(
    policy: Annotated[
        str, typer.Option(help="'expert', a run folder, a policy folder or a server (ws://HOST:PORT).")
    ],
    suite: Annotated[list[str], typer.Option(help="Suite(s) (metaworld: mt10; libero: libero_*).")],
    out: Annotated[Path, typer.Option(help="Report folder.")],
    env: Annotated[
        str,
        typer.Option(
            help="Environment: tabletop (built in) | metaworld (suite mt10) | libero (suites libero_spatial, "
            "libero_object, libero_goal, libero_10; run from .venv-libero)."
        ),
    ] = "tabletop",
    env_option: Annotated[
        list[str] | None,
        typer.Option("--env-option", help="KEY=VALUE for the env, repeatable (e.g. num_steps_wait=10)."),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per task.")] = 10,
    chunk_exec: Annotated[
        str, typer.Option(help="full | half | 1 | ensemble[:M] (actions run per chunk; ensemble: ACT's).")
    ] = "full",
    perturb: PerturbOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    envs_per_worker: Annotated[int, typer.Option(min=1, help="Envs in lockstep per worker (batched).")] = 1,
    seed: Seed = 1000,
    videos: Annotated[int, typer.Option(min=0, help="Episodes recorded per task.")] = 1,
    image_size: ImageSize = 128,
    task: Annotated[list[str] | None, typer.Option(help="Only these task(s) of the suite.")] = None,
    layout: LayoutOpt = "random",
    prompt_mode: Annotated[
        str,
        typer.Option(
            help="Visual prompt per episode from the world's ground truth (PixelVLA): "
            "text | point | line | box | mask | text+mask."
        ),
    ] = "text",
) -> None:
    """Closed-loop evaluation: success per task with 95% CIs, report.md, plot and videos."""
    from vlaworks.eval.run import evaluate as run_evaluate
    from vlaworks.eval.workers import DEFAULT_ENV

    _tabletop_only(env, perturb=bool(perturb), layout=layout != "random", prompt_mode=prompt_mode != "text")
    tabletop = env == DEFAULT_ENV
    env_kwargs = {"layout": layout} if tabletop else {}
    env_kwargs |= _parse_sets(env_option, "--env-option", "num_steps_wait=10")
    result = run_evaluate(
        policy,
        suite if tabletop else [f"{env}/{s}" for s in suite],
        episodes,
        chunk_exec,
        perturb or [],
        out=out,
        workers=workers,
        envs_per_worker=envs_per_worker,
        seed=seed,
        videos=videos,
        image_size=image_size,
        tasks=task,
        env_kwargs=env_kwargs,
        prompt_mode=prompt_mode,
    )
    overall = result.overall()
    typer.echo(f"success {100 * overall.rate:.1f}% ({overall.successes}/{overall.n})")


@app.command()
def serve(
    policy: Annotated[str, typer.Option(help="A run folder or a policy folder.")],
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all of them).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
    device: Annotated[str | None, typer.Option(help="cpu | cuda (default: cuda if available).")] = None,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Concurrent requests run as one model call (1: no batching).")
    ] = 8,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a batch waits for other clients' requests.")
    ] = 2.0,
    max_message_mb: Annotated[
        float, typer.Option(callback=_positive, help="Largest request frame accepted, in MiB.")
    ] = 8.0,
) -> None:
    """Serve a policy over websocket + msgpack-numpy (openpi's protocol): openpi_client or
    `vlaworks eval --policy ws://HOST:PORT` get action chunks; GET /healthz checks it."""
    from vlaworks.serve.server import ServerOptions
    from vlaworks.serve.server import serve as run_server

    options = ServerOptions(
        host=host,
        port=port,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        max_message_bytes=int(max_message_mb * 2**20),
    )
    run_server(policy, options, announce=typer.echo, device=device)


@app.command()
def probe(
    policy: Annotated[str, typer.Option(help="A run folder or a policy folder.")],
    out: Annotated[Path, typer.Option(help="Folder for probe.md / vqa.md.")],
    n_train: Annotated[int, typer.Option(min=1, help="Probe training images.")] = 400,
    n_test: Annotated[int, typer.Option(min=1, help="Probe test images.")] = 200,
    vqa: Annotated[int, typer.Option(min=0, help="Held-out VQA questions (0 skips VQA).")] = 200,
    seed: Seed = 0,
    image_size: ImageSize = 128,
) -> None:
    """Seed 004 representation probes: linear probe of vision features and VQA accuracy,
    before (the initial backbone) vs after VLA training."""
    from vlaworks.eval.probes import run_probe_comparison
    from vlaworks.eval.vqa import run_vqa_comparison

    out.mkdir(parents=True, exist_ok=True)
    probe_md, vqa_md = out / "probe.md", out / "vqa.md"
    run_probe_comparison(policy, probe_md, n_train=n_train, n_test=n_test, seed=seed, image_size=image_size)
    typer.echo(probe_md.read_text())
    if vqa:
        run_vqa_comparison(policy, vqa_md, n=vqa, image_size=image_size)
        typer.echo(vqa_md.read_text())


@app.command("export-backbone")
def export_backbone(
    policy: Annotated[Path, typer.Option(help="A run folder or a policy folder.")],
    out: Annotated[Path, typer.Option(help="Backbone folder to write; train on it with --backbone OUT.")],
) -> None:
    """Write a trained policy's VLM as a backbone folder (e.g. after `--recipe vlm-fast`,
    seed 003's action-knowledge injection, before VLA training on it)."""
    from vlaworks.train.pipeline import export_backbone as export

    typer.echo(f"backbone at {export(policy, out)}")


@app.command("export-policy")
def export_policy(
    policy: Annotated[Path, typer.Option(help="A run folder or a policy folder.")],
    out: Annotated[Path, typer.Option(help="Policy folder to write.")],
    merge_lora: Annotated[bool, typer.Option(help="Fold LoRA adapters into the base weights.")] = False,
    drop_aux: Annotated[
        bool, typer.Option(help="Leave out the training-only auxiliary losses (geometry projector, ...).")
    ] = False,
    decoding: Annotated[
        str | None,
        typer.Option(help="Token heads: greedy (the papers') | median (bins, string) | mean (bins)."),
    ] = None,
) -> None:
    """Write a trained policy as one policy folder; with --merge-lora its LoRA adapters are
    merged, so the folder is a plain policy (no lora_ weights) with the same actions; with
    --drop-aux it holds no auxiliary-loss weights (same actions: they never run at inference);
    with --decoding a token head decodes its actions that way (same weights)."""
    from vlaworks.models.checkpoint import load_policy, save_policy
    from vlaworks.models.policy import merge_lora as merge
    from vlaworks.models.policy import with_decoding, without_aux_losses

    loaded = load_policy(policy)
    loaded = with_decoding(loaded, decoding) if decoding is not None else loaded
    loaded = merge(loaded) if merge_lora else loaded
    typer.echo(f"policy at {save_policy(without_aux_losses(loaded) if drop_aux else loaded, out)}")


Precision = Annotated[str, typer.Option(help=" | ".join(MIXED_PRECISION) + " (auto: bf16 where native).")]
PatchSize = Annotated[int, typer.Option(min=1, help="Vision patch size in pixels.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Samples per step.")]
PeakLr = Annotated[float, typer.Option(callback=_positive, help="Peak learning rate.")]


@app.command()
def pretrain(
    out: Annotated[
        Path | None,
        typer.Option(help="Run folder (resumable); the backbone lands in OUT/vlm. Default: the cache."),
    ] = None,
    backbone: Annotated[
        str, typer.Option(help="Registry name, or a backbone folder to pretrain further (needs --out).")
    ] = MINIATURE_PRETRAIN.backbone,
    samples: Annotated[
        int, typer.Option(min=1, help="Rendered vision-language samples.")
    ] = MINIATURE_PRETRAIN.vl_samples,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = MINIATURE_PRETRAIN.steps,
    batch_size: BatchSize = MINIATURE_PRETRAIN.batch_size,
    lr: PeakLr = MINIATURE_PRETRAIN.lr,
    image_size: ImageSize = MINIATURE_PRETRAIN.image_size,
    patch_size: PatchSize = MINIATURE_PRETRAIN.patch_size,
    token_merge: Annotated[
        int, typer.Option(min=1, help="k x k patches per LM token (prismatic).")
    ] = MINIATURE_PRETRAIN.token_merge,
    mix: Annotated[
        str, typer.Option(help="Category weights, e.g. general=1,grounding=1,affordance=1,reasoning=0.")
    ] = "general=1,grounding=1,affordance=1,reasoning=1",
    cameras: Annotated[
        str, typer.Option(callback=_name_list, help="Comma list; the VL image goes to the first.")
    ] = ",".join(MINIATURE_PRETRAIN.cameras),
    mixed_precision: Precision = MINIATURE_PRETRAIN.mixed_precision,
    batching: Annotated[
        str, typer.Option(help="kind: one question kind per batch (less padding) | mixed.")
    ] = "kind",
    grounding: Annotated[
        int, typer.Option(min=0, help="Held-out grounding questions before / after (0: skip).")
    ] = 500,
    align_steps: Annotated[
        int, typer.Option(min=0, help="First train only the vision side for this many steps, the LM frozen.")
    ] = 0,
    seed: Seed = 0,
) -> None:
    """PokeVLM-style vision-language pretraining (general, grounding, affordance, reasoning) of a
    backbone, with the grounding benchmark before / after. Without --out the result is cached by
    its settings ($VLAWORKS_VLM_CACHE, default ~/.cache/vlaworks/vlm) and reused; recipes start from
    it with `train --vlm pretrained` (default settings) or --backbone FOLDER."""
    from vlaworks.sim.vl_data import parse_mix
    from vlaworks.train.pretrain import PretrainSettings, pretrain_vlm, pretrained_vlm, read_grounding

    try:
        weights = parse_mix(mix)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--mix") from None
    settings = PretrainSettings(
        backbone=backbone, cameras=tuple(cameras.split(",")), image_size=image_size, patch_size=patch_size,
        token_merge=token_merge, samples=samples, steps=steps, batch_size=batch_size, lr=lr,
        mixed_precision=mixed_precision, mix=weights, batching=batching, align_steps=align_steps, seed=seed,
    )
    if out is None:
        folder = pretrained_vlm(settings, grounding=grounding)
    else:
        folder = pretrain_vlm(out, settings, grounding=grounding)
    results = read_grounding(folder)
    if results:
        from vlaworks.eval.grounding import grounding_table

        labels = {"before": "random init", "after": "pretrained"}
        typer.echo(grounding_table({labels[k]: v for k, v in results.items()}))
    typer.echo(f"pretrained backbone at {folder}")


@app.command("geometry-teacher")
def geometry_teacher(
    out: Annotated[
        Path | None,
        typer.Option(help="New teacher folder (default: the cache folder of the 'tabletop-depth' teacher)."),
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(min=1, help="Training episodes per suite (default: 12).")
    ] = None,
    heldout: Annotated[
        int | None, typer.Option(min=1, help="Held-out episodes per suite (default: 3).")
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: 3000).")] = None,
    seed: Seed = 0,
) -> None:
    """Train PokeVLA's geometry teacher for the miniature world once (depth and world points
    of the base and wrist views) and print its held-out accuracy. With the default settings
    and no --out it lands where geometry_align's default teacher 'tabletop-depth' is read
    (or is reused from there); pass a folder to the aux loss as its teacher option otherwise."""
    from vlaworks.train.geometry_teacher import TeacherSettings, cached_teacher, train_teacher

    given = {"episodes": episodes, "heldout": heldout, "steps": steps}
    settings = TeacherSettings(seed=seed, **{k: v for k, v in given.items() if v is not None})
    if out is None:
        folder = cached_teacher(settings)
    else:
        train_teacher(settings, out)
        folder = out
    typer.echo((folder / "report.md").read_text() + f"teacher at {folder}")


@app.command()
def compare(
    recipe: Annotated[list[str], typer.Option(help="Recipe to compare, repeatable.")],
    data: Annotated[Path, typer.Option(help="Dataset folder every recipe trains on.")],
    suite: Annotated[str, typer.Option(help="Suite to evaluate on.")],
    out: Annotated[Path, typer.Option(help="Folder for runs, reports, table.md and results.json.")],
    layout: LayoutOpt = "random",
    condition: Annotated[
        list[str] | None,
        typer.Option(help="clean | masked | variant | paraphrase (repeatable; default all)."),
    ] = None,
    backbone: str = MINIATURE.backbone,
    vlm: Vlm = "random",
    cameras: Annotated[
        str, typer.Option(callback=_name_list, help="Comma list of camera views.")
    ] = ",".join(MINIATURE.cameras),
    image_size: ImageSize = MINIATURE.image_size,
    patch_size: PatchSize = MINIATURE.patch_size,
    chunk: Annotated[int, typer.Option(min=1, help="Action chunk length.")] = MINIATURE.chunk,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per recipe.")] = MINIATURE.steps,
    batch_size: BatchSize = MINIATURE.batch_size,
    lr: PeakLr = MINIATURE.lr,
    episodes: Annotated[
        int, typer.Option(min=1, help="Evaluation episodes per task.")
    ] = MINIATURE.eval_episodes,
    task: Annotated[list[str] | None, typer.Option(help="Only these task(s) of the suite.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Evaluation worker processes.")] = 1,
    envs_per_worker: Annotated[
        int, typer.Option(min=1, help="Envs in lockstep per worker.")
    ] = MINIATURE.envs_per_worker,
    parallel: Annotated[int, typer.Option(min=1, help="Recipes trained and evaluated at once.")] = 1,
    mixed_precision: Precision = MINIATURE.mixed_precision,
    seed: Seed = 0,
    heldout: Annotated[
        Path | None,
        typer.Option(help="Demonstrations no recipe trains on: adds each policy's open-loop action error."),
    ] = None,
    probes: Annotated[
        int,
        typer.Option(min=0, help="Per recipe, also run linear probes and N held-out VQA questions (0: off)."),
    ] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override for every recipe: policy.backbone_options.dual_encoder=true"),
    ] = None,
) -> None:
    """Train several recipes on one dataset with one budget (by default the demo's); evaluate
    all under the same conditions (seed 004 Tables II-IV); print a success table with 95% CIs."""
    from dataclasses import replace

    from vlaworks.compare import CompareConfig, run_compare
    from vlaworks.eval.protocol import CONDITIONS

    overrides = _parse_sets(set_)
    if any(k.startswith("train.") for k in overrides):
        raise typer.BadParameter("compare fixes the training budget for all recipes: use --steps, --lr, ...")
    budget = replace(
        MINIATURE, backbone=backbone, cameras=tuple(cameras.split(",")), image_size=image_size,
        patch_size=patch_size, chunk=chunk, steps=steps, batch_size=batch_size, lr=lr,
        mixed_precision=mixed_precision, eval_episodes=episodes, envs_per_worker=envs_per_worker,
    )
    cfg = CompareConfig(
        recipes=tuple(recipe),
        data=data,
        suite=suite,
        out=out,
        layout=layout,
        conditions=tuple(condition or CONDITIONS),
        budget=budget,
        tasks=tuple(task) if task else None,
        workers=workers,
        parallel=parallel,
        seed=seed,
        heldout=heldout,
        probes=probes,
        recipe_overrides=overrides,
        vlm=vlm,
    )
    run_compare(cfg)
    typer.echo((out / "table.md").read_text())
    if probes:
        typer.echo((out / "representation.md").read_text())


@app.command()
def recipes() -> None:
    """List the registered recipes."""
    from vlaworks.recipes import get_recipe, recipe_names

    for name in recipe_names():
        try:
            text = get_recipe(name).description
        except ValueError as err:  # a recipe that needs an option (a pretrained --backbone FOLDER)
            text = str(err)
        typer.echo(f"{name:28s} {text}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, run and report.")] = Path("runs/demo"),
    suite: Annotated[str | None, typer.Option(help="Task suite (default: spatial).")] = None,
    layout: Annotated[str | None, typer.Option(help="fixed | random (default: fixed).")] = None,
    episodes: Annotated[int | None, typer.Option(min=1, help="Expert demonstrations (default: 120).")] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe (default: vlm4vla+proprio).")] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, help=f"Training steps (default: {MINIATURE.steps}).")
    ] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(min=1, help=f"Episodes per task (default: {MINIATURE.eval_episodes}).")
    ] = None,
    chunk_exec: Annotated[
        str | None, typer.Option(help=f"full|half|1|ensemble (default: {MINIATURE.chunk_exec}).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Evaluation worker processes (default: 2).")
    ] = None,
    backbone: Annotated[str | None, typer.Option(help=f"Backbone (default: {MINIATURE.backbone}).")] = None,
    vlm: Annotated[
        str | None,
        typer.Option(help="random | pretrained (the cached `vlaworks pretrain` VLM) (default: random)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of data, training, eval (default: 0).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override: policy.augment.shift=0, train.lr=1e-3 (as for train)."),
    ] = None,
) -> None:
    """Generate -> train (VLM4VLA + proprio on a tiny Prismatic VLM) -> evaluate -> report, on the CPU."""
    from dataclasses import replace

    from vlaworks.demo import DemoConfig, run_demo

    def given(**options: object) -> dict[str, object]:
        return {k: v for k, v in options.items() if v is not None}

    budget = replace(
        MINIATURE, **given(steps=steps, eval_episodes=eval_episodes, chunk_exec=chunk_exec, backbone=backbone)
    )
    settings = given(
        suite=suite, layout=layout, episodes=episodes, recipe=recipe, workers=workers, seed=seed, vlm=vlm
    )
    run_demo(DemoConfig(out=out, budget=budget, overrides=_parse_sets(set_), **settings))


if __name__ == "__main__":
    app()

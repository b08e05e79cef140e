"""``train_policy``: recipe + dataset folder -> trained policy checkpoint (``vlaworks train``).

It joins the parts: the recipe's :class:`~vlaworks.models.config.PolicyConfig` (with
overrides), the dataset's normalisation statistics (which travel inside the checkpoint),
the window dataset the policy's cameras / chunk / image size ask for, the recipe's
data-dependent parts (a FAST head's tokenizer is fitted on the action chunks) and batch
source (robot windows, mixed 50/50 with vision-language batches for co-training recipes),
and the resumable trainer. A run folder holds::

    RUN/recipe.json              the recipe actually trained (after overrides)
    RUN/dataset.json             the dataset's path and fingerprint (resuming on another is an error)
    RUN/metrics.csv              per-step loss, lr, throughput
    RUN/checkpoints/step-N/      resumable trainer checkpoints (each also a loadable policy)
    RUN/policy/                  the final policy (config, safetensors, normaliser, tokenizer)
    RUN/vl_cotrain.npz           rendered vision-language samples (co-training recipes only)
    RUN/tokenizer_fit.json       a fitted (FAST) tokenizer's reconstruction error and tokens per chunk

A staged recipe (``Recipe.stages``) trains each stage as such a run in
``RUN/stages/<i>-<name>/``, each from the previous stage's final policy
(:mod:`vlaworks.train.stages`), and writes the last stage's policy to ``RUN/policy``; trainer
overrides (``--steps``, ``--lr``, ``--set train.*``) apply to every stage.

``reuse`` (``vlaworks train --reuse-stages RUN``) first copies the leading stages another
run on the same dataset finished with the same configuration
(:func:`vlaworks.train.stages.reusable_stages`), e.g. the ``vla`` stage every PixelVLA Table 4
row starts with; the same seed would train them to the same weights.

Running the same command again resumes from ``RUN/checkpoints/latest`` (a staged run: skips
the stages whose ``policy/`` exists, except the last, and resumes the first unfinished one).
Every command that reads the trained policy takes the run folder
(:func:`vlaworks.models.checkpoint.load_policy`).

Before anything is built the dataset passes the integrity check
(:func:`vlaworks.data.check.check_dataset`) and the run folder rule
(:mod:`vlaworks.train.run_folder`); then every RNG is seeded from the train seed, so the
same command and seed build the same initial policy and, on a CPU, train to
bit-identical weights, losses and ``metrics.csv`` (wall-clock throughput aside).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from vlaworks.data.check import check_dataset
from vlaworks.data.dataset import WindowDataset
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.models.checkpoint import (
    RUN_CHECKPOINTS_DIR,
    RUN_POLICY_DIR,
    load_policy,
    save_policy,
    write_policy_files,
)
from vlaworks.models.policy import VLAPolicy
from vlaworks.models.vision.dual import is_dual
from vlaworks.processing import PolicyProcessor, collate
from vlaworks.recipes import Recipe, get_recipe
from vlaworks.recipes.training import prepare_policy, training_source
from vlaworks.train.checkpoint import resume_candidates
from vlaworks.train.config import TrainResult
from vlaworks.train.run_folder import (
    DATASET_FILE,
    check_paths,
    check_run_folder,
    read_dataset_identity,
    start_run_folder,
)
from vlaworks.train.stages import (
    build_stage_policy,
    copy_stages,
    reusable_stages,
    stage_dir,
    stage_identity,
)
from vlaworks.train.trainer import train


@dataclass
class TrainRun:
    """What a finished ``train_policy`` call produced."""

    recipe: Recipe
    policy: VLAPolicy
    result: TrainResult
    policy_dir: Path
    #: leading stages copied from ``--reuse-stages`` instead of trained
    reused: list[str] = field(default_factory=list)


def build_recipe(
    name: str,
    *,
    backbone: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Recipe:
    """The named recipe on ``backbone`` (when given) with dotted-key ``overrides`` applied."""
    options = {"backbone": backbone} if backbone else {}
    recipe = get_recipe(name, **options)
    return recipe.override(overrides) if overrides else recipe


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dotted ``--set`` overrides split into recipe keys (``policy.*`` / ``cotrain.*``) and
    trainer keys (``train.*``, prefix removed), as ``build_recipe`` and ``train_policy`` take them."""
    recipe_sets = {k: v for k, v in overrides.items() if not k.startswith("train.")}
    train_sets = {k.removeprefix("train."): v for k, v in overrides.items() if k.startswith("train.")}
    return recipe_sets, train_sets


def training_windows(recipe: Recipe, dataset: LeRobotDataset) -> tuple[Recipe, Normalizer, WindowDataset]:
    """The recipe with its proprio length read from the dataset (when it uses state and
    leaves ``state_dim`` unset), the dataset's normaliser for the keys the policy reads, and
    the training windows (with the recipe's augmentation)."""
    config = recipe.policy
    if config.use_state and config.state_dim is None:
        state_dim = int(dataset.features["observation.state"]["shape"][0])
        recipe = recipe.override({"policy.state_dim": state_dim})
        config = recipe.policy
    keys = ("action", "observation.state") if config.use_state else ("action",)
    normalizer = Normalizer(dataset.stats, mode=config.normaliser_mode, keys=keys)
    windows = WindowDataset(dataset, PolicyProcessor.from_config(config, normalizer))
    return recipe, normalizer, windows


def train_policy(
    recipe: Recipe,
    data: Path,
    out: Path,
    *,
    train_overrides: dict[str, Any] | None = None,
    resume: bool = True,
    reuse: Path | None = None,
) -> TrainRun:
    """Train ``recipe`` on the dataset at ``data`` into run folder ``out`` (see module doc);
    ``resume=False`` starts again, replacing what an earlier run wrote in ``out``; ``reuse``:
    a run folder whose matching leading stages are copied instead of trained."""
    data, out = Path(data), Path(out)
    check_paths(data, out)
    check_dataset(data).raise_for_problems()
    dataset = LeRobotDataset(data)
    dirs = [stage_dir(out, i, s.name) for i, s in enumerate(recipe.stages)] or [out]
    resuming = resume and any(
        resume_candidates(d / RUN_CHECKPOINTS_DIR) or (d / RUN_POLICY_DIR).is_dir() for d in dirs[:-1]
    )
    resuming = resuming or (resume and bool(resume_candidates(dirs[-1] / RUN_CHECKPOINTS_DIR)))
    identity = check_run_folder(out, data, fresh=not resume, resuming=resuming)
    start = partial(start_run_folder, out, identity, fresh=not resume)
    if not recipe.stages:
        if reuse is not None:
            raise ValueError(f"--reuse-stages: recipe {recipe.name} has no stages to reuse; drop the option.")
        return _train_stage(recipe, dataset, out, train_overrides, resume, previous=None, start=start)
    staged = [training_windows(recipe.stage_recipe(s), dataset)[0] for s in recipe.stages]  # checked first
    plan = []
    if reuse is not None:  # checked before anything is written
        _check_reusable(Path(reuse), out, identity)
        wanted = [
            (s.name, stage_identity(r.to_dict(), r.train_config(d, **(train_overrides or {})).to_dict()))
            for s, r, d in zip(recipe.stages[:-1], staged[:-1], dirs[:-1], strict=True)  # not the last
        ]
        plan = reusable_stages(Path(reuse), out, wanted, resume=resume)
    start()
    (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1) + "\n")
    copied = copy_stages(plan)
    previous: Path | None = None
    for index, (stage, folder) in enumerate(zip(recipe.stages, dirs, strict=True)):
        last = index == len(recipe.stages) - 1
        if not last and (resume or stage.name in copied) and (folder / RUN_POLICY_DIR).is_dir():
            previous = folder / RUN_POLICY_DIR  # finished before: the next stage starts from it
            continue
        folder.mkdir(parents=True, exist_ok=True)
        run = _train_stage(recipe.stage_recipe(stage), dataset, folder, train_overrides, resume, previous)
        previous = run.policy_dir
    run.policy_dir = save_policy(run.policy, out / RUN_POLICY_DIR)
    run.recipe = recipe
    run.reused = copied
    return run


def _check_reusable(source: Path, out: Path, identity: dict[str, str]) -> None:
    """Refuse ``--reuse-stages source`` unless it is another run folder trained on this dataset."""
    if source.resolve() == out.resolve():
        raise ValueError(f"--reuse-stages {source} is --out itself; a run resumes without the option.")
    recorded = read_dataset_identity(source)
    if recorded is None:
        raise ValueError(f"--reuse-stages {source} is not a run folder ({source / DATASET_FILE} is missing).")
    if recorded.get("fingerprint") != identity["fingerprint"]:
        raise ValueError(
            f"--reuse-stages {source} was trained on {recorded.get('path')}, another dataset than --data "
            f"{identity['path']}; its stages would not match. Choose a run on this dataset."
        )


def _train_stage(
    recipe: Recipe,
    dataset: LeRobotDataset,
    out: Path,
    train_overrides: dict[str, Any] | None,
    resume: bool,
    previous: Path | None,
    start: Callable[[], None] | None = None,
) -> TrainRun:
    """Train the one-stage ``recipe`` into run folder ``out``, from the ``previous`` stage's
    policy folder when given; ``start`` makes the run folder once the policy is built (so a
    data or config error writes nothing). Writes ``recipe.json`` (and ``init.json`` for a
    later stage)."""
    recipe, normalizer, windows = training_windows(recipe, dataset)
    train_cfg = recipe.train_config(out, **(train_overrides or {}))
    set_seed(train_cfg.seed)  # the initial weights depend on the seed only, not on the process
    policy, init = build_stage_policy(recipe.policy, normalizer, previous)
    if start is not None:
        start()
    (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1) + "\n")
    if init is not None:
        (out / "init.json").write_text(json.dumps(init, indent=1) + "\n")
    fit = prepare_policy(policy, windows, seed=train_cfg.seed)
    if fit is not None:
        (out / "tokenizer_fit.json").write_text(json.dumps(fit, indent=1) + "\n")
    source = training_source(
        recipe, windows, collate, train_cfg.batch_size, seed=train_cfg.seed,
        vl_cache=out / "vl_cotrain.npz",
    )
    result = train(
        policy,
        source,
        None,
        train_cfg,
        extra_save=lambda folder: write_policy_files(policy, folder),
        resume=resume,
    )
    policy_dir = save_policy(policy, out / RUN_POLICY_DIR)
    return TrainRun(recipe=recipe, policy=policy, result=result, policy_dir=policy_dir)


def export_backbone(policy: Path, out: Path) -> Path:
    """Write the backbone of a trained policy (run or policy folder, as :func:`load_policy`
    reads it) as a backbone folder that any recipe starts from with ``--backbone out``: the
    hand-off of two-stage recipes such as seed 003's FAST action-token fine-tuning of the
    VLM before VLA training."""
    trained = load_policy(policy)
    config = trained.config
    if is_dual(trained.backbone):
        raise ValueError(
            f"{policy} has a dual vision encoder (frozen copy + trained copy); a backbone folder holds "
            "one encoder. Export from a policy trained without dual_encoder."
        )
    if config.lora.enabled:
        raise ValueError(f"{policy} was trained with LoRA adapters; export needs full fine-tuning weights.")
    trained.backbone.save_pretrained(str(out))
    return Path(out)

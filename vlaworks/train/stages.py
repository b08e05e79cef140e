"""Training stages: a stage's policy starts from the previous stage's weights.

A staged recipe (``Recipe.stages``, e.g. PixelVLA's continuous-action training then
pixel-level understanding enhancement) trains each stage as a one-stage run in
``RUN/stages/<i>-<name>/`` (its own checkpoints, ``metrics.csv`` and ``policy/``). Stage
``i > 0`` builds its policy from its own config and loads the previous stage's final
policy into it by parameter name (:func:`build_stage_policy`):

* every backbone weight must load (the stages share one backbone), else it is an error;
* head, token-source and auxiliary weights load where the previous stage had the same part
  (same names and shapes); parts new in this stage keep their fresh, seeded initialisation,
  parts the stage dropped are left behind;
* LoRA adapters are injected *after* loading, so a LoRA stage starts from the previous
  stage's full weights; a previous stage trained with LoRA cannot seed another (its
  adapters would need merging), which is an error naming the stage.

Each stage's ``init.json`` records where it started from and which parts were fresh.

Rows of an ablation often share their leading stages (PixelVLA's Table 4 rows all start with
the same ``vla`` stage): :func:`reusable_stages` and :func:`copy_stages` copy the finished
leading stages of another run into a new one when they would train the same thing (same
dataset, stage policy, and trainer settings that shape the weights), so a row trains only its
own stages.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file

from vlaworks.models.config import LoraOptions, PolicyConfig
from vlaworks.models.policy import VLAPolicy, build_policy, inject_lora, set_trainable
from vlaworks.models.weights import upgrade_keys

if TYPE_CHECKING:
    from vlaworks.data.normalize import Normalizer

#: a staged run's stage folders: ``RUN/stages/<index>-<name>``
STAGES_DIR = "stages"
#: written into a stage folder copied from another run: ``{"from": <source stage folder>}``
REUSED_FILE = "reused.json"
#: trainer fields that change how a run logs and saves, not the weights it trains
OPERATIONAL_FIELDS = (
    "out_dir", "save_every", "keep_last", "log_every", "progress", "tensorboard", "num_workers"
)


def stage_dir(run: Path, index: int, name: str) -> Path:
    """The run folder of stage ``index`` (0-based) named ``name`` inside run ``run``."""
    return Path(run) / STAGES_DIR / f"{index}-{name}"


def load_previous_stage(policy: VLAPolicy, folder: Path) -> dict[str, Any]:
    """Load the policy saved in ``folder`` into ``policy`` (no LoRA adapters on either) by
    name and shape; returns ``{"from", "loaded", "fresh"}`` (``fresh``: top-level parts of
    ``policy`` with weights the previous stage did not have, e.g. ``token_sources.0``)."""
    from vlaworks.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE

    folder = Path(folder)
    if PolicyConfig.load(folder / CONFIG_FILE).lora.enabled:
        raise ValueError(
            f"The previous stage's policy {folder} was trained with LoRA adapters; a later stage starts "
            "from full weights. Train that stage without LoRA or make LoRA the last stage."
        )
    saved = upgrade_keys(policy, load_file(str(folder / WEIGHTS_FILE)))  # older transformers' names too
    own = policy.state_dict()
    kept = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    policy.load_state_dict(kept, strict=False)
    loaded_ptrs = {own[k].data_ptr() for k in kept}
    fresh = [k for k in own if k not in kept and own[k].data_ptr() not in loaded_ptrs]  # tied aliases loaded
    lost = [k for k in fresh if k.startswith("backbone.")]
    if lost:
        raise ValueError(
            f"The previous stage's policy {folder} lacks backbone weights {lost[:4]} (or holds other "
            "shapes); every stage of a recipe must use the same backbone."
        )
    return {"from": str(folder), "loaded": len(kept), "fresh": sorted({_part(k) for k in fresh})}


def _part(key: str) -> str:
    """The policy part a parameter belongs to: ``head``, ``token_sources.0``, ``aux_losses.1``."""
    names = key.split(".")
    return ".".join(names[:2]) if names[0] in ("token_sources", "aux_losses") else names[0]


def build_stage_policy(
    config: PolicyConfig, normalizer: Normalizer, previous: Path | None
) -> tuple[VLAPolicy, dict[str, Any] | None]:
    """The stage's policy built from ``config``, started from the ``previous`` stage's policy
    folder when given (module docstring); returns it and the load report (``None`` for a
    first stage)."""
    if previous is None:
        return build_policy(config, normalizer), None
    plain = replace(config, lora=LoraOptions(enabled=False), from_scratch=False)
    policy = build_policy(plain, normalizer)
    report = load_previous_stage(policy, previous)
    policy.config = config
    if config.lora.enabled:
        inject_lora(policy)
    set_trainable(policy)
    return policy, report


def stage_identity(recipe: dict[str, Any], train_config: dict[str, Any]) -> dict[str, Any]:
    """What decides a stage's trained weights: its policy and co-training settings (a one-stage
    recipe's ``to_dict()``) and its trainer settings less :data:`OPERATIONAL_FIELDS`."""
    return {
        "policy": recipe["policy"],
        "cotrain": recipe.get("cotrain", {}),
        "train": {k: v for k, v in train_config.items() if k not in OPERATIONAL_FIELDS},
    }


def first_difference(ours: Any, theirs: Any, key: str = "") -> str | None:
    """The first dotted key where two JSON values differ, with both values; ``None`` if equal."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for name in sorted(set(ours) | set(theirs)):
            found = first_difference(ours.get(name), theirs.get(name), f"{key}.{name}" if key else name)
            if found:
                return found
        return None
    return None if ours == theirs else f"{key or 'value'} ({theirs!r} there, {ours!r} here)"


def reusable_stages(
    source: Path, out: Path, wanted: list[tuple[str, dict[str, Any]]], *, resume: bool = True
) -> list[tuple[str, Path, Path]]:
    """Which leading stages of run ``source`` run ``out`` can copy: ``(name, source stage
    folder, own stage folder)`` per stage, for ``wanted`` (per leading stage of ``out``'s
    recipe, in order: its name and :func:`stage_identity`). With ``resume``, stages ``out``
    finished are kept and a stage it started ends the list (it resumes, it is not replaced);
    the list also ends at the first stage that differs or that ``source`` did not finish. The
    caller checks that both runs read the same dataset. Raises ``ValueError`` naming the
    difference when the first stage cannot be used; writes nothing."""
    from vlaworks.models.checkpoint import RUN_POLICY_DIR

    source, out = Path(source), Path(out)
    plan: list[tuple[str, Path, Path]] = []
    for index, (name, identity) in enumerate(wanted):
        mine, theirs = stage_dir(out, index, name), stage_dir(source, index, name)
        if resume and (mine / RUN_POLICY_DIR).is_dir():
            continue  # finished here before
        if resume and mine.exists():
            break
        reason = None
        if not (theirs / RUN_POLICY_DIR).is_dir():
            reason = f"{source} has no finished stage {index} {name!r} ({theirs / RUN_POLICY_DIR} is missing)"
        else:
            recorded = stage_identity(
                json.loads((theirs / "recipe.json").read_text()),
                json.loads((theirs / "train_config.json").read_text()),
            )
            difference = first_difference(json.loads(json.dumps(identity)), recorded)
            if difference:
                reason = f"stage {index} {name!r} of {source} trained another configuration: {difference}"
        if reason and index == 0:
            raise ValueError(f"--reuse-stages: nothing to reuse, {reason}.")
        if reason:
            break
        plan.append((name, theirs, mine))
    return plan


def copy_stages(plan: list[tuple[str, Path, Path]]) -> list[str]:
    """Copy each planned stage folder (:func:`reusable_stages`) without its checkpoints,
    atomically, marked with :data:`REUSED_FILE`; returns the stage names."""
    for _, theirs, mine in plan:
        partial = mine.with_name(mine.name + ".tmp")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(theirs, partial, ignore=shutil.ignore_patterns("checkpoints"))
        (partial / REUSED_FILE).write_text(json.dumps({"from": str(theirs.resolve())}, indent=1) + "\n")
        partial.rename(mine)
    return [name for name, _, _ in plan]

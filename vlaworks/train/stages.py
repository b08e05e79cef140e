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
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file

from vlaworks.models.config import LoraOptions, PolicyConfig
from vlaworks.models.policy import VLAPolicy, build_policy, inject_lora, set_trainable

if TYPE_CHECKING:
    from vlaworks.data.normalize import Normalizer

#: a staged run's stage folders: ``RUN/stages/<index>-<name>``
STAGES_DIR = "stages"


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
    saved = load_file(str(folder / WEIGHTS_FILE))
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

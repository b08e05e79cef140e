"""π0 (Black et al. 2024) and seed 004's π0⁺ as recipes on the shared core.

* ``pi0``: a PaliGemma VLM whose prefix (images of every camera + instruction) feeds π0's
  flow-matching action expert (``vlaworks.models.heads.flow``), with the proprio state in
  the expert; chunks of ``H = 50`` actions, 10 Euler steps at inference, full fine-tuning
  at lr 2.5e-5 (openpi's fine-tuning default), three-camera layout reduced to the world's
  base + wrist views. Trained with instruction augmentation, as seed 004 trains its π0
  baseline (footnote 1): each training sample's instruction is reworded with probability
  :data:`INSTRUCTION_AUGMENT` by ``vlaworks.data.instructions``, whose wordings share nothing
  with the evaluation's paraphrases (seed 004 keeps its augmentation disjoint from its
  evaluation's paraphrases too; it gives no rate, 0.5 keeps half the samples in the
  dataset's own wording). ``--set policy.augment.instructions=0`` trains without it.
* ``pi0+``: seed 004's π0⁺, the same VLM with its three switches: the flow expert replaced
  by the string action tokenizer (4 decimals, III-B), the partially frozen dual vision
  encoder (III-A) and 50 % vision-language co-training (III-C). Seed 004 trains it without
  instruction augmentation, as here.
"""

from __future__ import annotations

from typing import Any

from vlaworks.data.augment import AugmentOptions
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.recipes.base import Recipe
from vlaworks.recipes.openvla import STRING_DECIMALS, VL_FRACTION

DEFAULT_BACKBONE = "paligemma-tiny"
#: π0's action horizon H and integration steps
CHUNK = 50
NUM_STEPS = 10
#: probability of rewording a training sample's instruction (``pi0`` only, not ``pi0+``)
INSTRUCTION_AUGMENT = 0.5


def pi0(
    backbone: str = DEFAULT_BACKBONE,
    *,
    plus: bool = False,
    chunk: int = CHUNK,
    cameras: tuple[str, ...] = ("base", "wrist"),
    image_size: int = 224,
    lr: float = 2.5e-5,
    batch_size: int = 32,
    vl_samples: int = 2000,
    backbone_options: dict[str, Any] | None = None,
    expert: dict[str, Any] | None = None,
) -> Recipe:
    """π0 on ``backbone`` (``plus``: seed 004's π0⁺); ``expert`` sets flow-head options
    (``width``, ``layers``, ``heads``, ``num_steps``)."""
    options = dict(backbone_options or {})
    if plus:
        options["dual_encoder"] = True
        head = PartSpec("token", {"tokenizer": "string", "decimals": STRING_DECIMALS})
    else:
        head = PartSpec("flow", {"num_steps": NUM_STEPS, **(expert or {})})
    policy = PolicyConfig(
        backbone=backbone,
        head=head,
        chunk_size=chunk,
        backbone_options=options,
        cameras=tuple(cameras),
        image_size=image_size,
        use_state=not plus,
        augment=AugmentOptions(instructions=0.0 if plus else INSTRUCTION_AUGMENT),
    )
    if plus:
        description = (
            f"pi0+ on {backbone}: partially frozen dual vision encoder, string action tokens "
            f"({STRING_DECIMALS} decimals), {int(VL_FRACTION * 100)}% vision-language co-training"
        )
    else:
        description = (
            f"pi0 on {backbone}: flow-matching action expert with the proprio state, {NUM_STEPS} steps, "
            f"instruction augmentation (p={INSTRUCTION_AUGMENT})"
        )
    return Recipe(
        name="pi0+" if plus else "pi0",
        description=description,
        policy=policy,
        train={"lr": lr, "batch_size": batch_size},
        cotrain={"vl_fraction": VL_FRACTION, "vl_samples": vl_samples} if plus else {},
    )


def pi0_plus(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Seed 004's π0⁺ (Table II): π0 with the D, S and C switches."""
    return pi0(backbone, plus=True, **options)

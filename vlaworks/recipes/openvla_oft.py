"""OpenVLA-OFT (Kim et al. 2025, "Fine-Tuning Vision-Language-Action Models: Optimizing
Speed and Success"): the baseline every seed compares against, as a recipe.

OFT's LIBERO recipe (paper section IV, ``LIBERO.md`` and ``vla-scripts/finetune.py`` of
its code), and how it maps onto the core:

* a Prismatic VLM (DINOv2 ⊕ SigLIP -> MLP projector -> Llama 2 7B; here ``prismatic-tiny``
  or any backbone) with the OpenVLA prompt ``"In: What action should the robot take to
  {instruction}?\\nOut:"``;
* parallel decoding of ``chunk x 7`` zero action placeholders in one bidirectional block,
  an MLP ResNet over each step's placeholder states and an L1 loss
  (``vlaworks.models.heads.parallel_l1``); chunk ``K = 8`` for LIBERO;
* third-person + wrist images (``num_images_in_input 2``) at 224 x 224 and the proprio
  state as one token through OFT's ``ProprioProjector`` (``Linear -> GELU -> Linear``,
  the ``proprio`` source with ``projector="mlp"``);
* LoRA rank 32, ``lora_alpha = min(32, 16) = 16``, dropout 0, on every linear layer of
  the LM; lr 5e-4; batch 8 per process on 8 GPUs (global 64);
* image augmentation: a random crop of 90 % of the area plus brightness / contrast jitter
  (here a random shift of ``image_size * (1 - sqrt(0.9)) / 2`` px, 6 px at 224, and
  factors in ``[0.8, 1.2]``); q01 / q99 action and state normalisation.

Deviations, on purpose or for lack of the part:

* OFT's ``target_modules="all-linear"`` also puts adapters on the vision towers and the
  projector; here LoRA covers the LM only, as every vlaworks recipe does, so the vision
  encoder is fully fine-tuned and the projector stays frozen (``models.policy.set_trainable``);
  peft's default adapter initialisation instead of OFT's ``"gaussian"``;
* the proprio token sits after the prompt (token sources are appended after the native
  prompt); OFT inserts it right after the vision patches, before the text;
* the learning rate follows the trainer's warm-up + cosine schedule; OFT keeps 5e-4
  constant and divides it by 10 after 100K of 150K steps;
* no saturation / hue jitter (the augmentation module has none), brightness is a factor
  rather than OFT's additive delta of 0.2, and evaluation reads the full image where OFT
  centre-crops 90 % of it;
* the placeholders' mask is the paper's (placeholders bidirectional, prompt causal);
  OFT's transformers fork drops the causal mask for the whole sequence (see the head).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vlaworks.data.augment import AugmentOptions
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.recipes.base import Recipe

DEFAULT_BACKBONE = "prismatic-tiny"
#: OFT's action chunk for LIBERO (``NUM_ACTIONS_CHUNK``)
LIBERO_CHUNK = 8
LORA_RANK = 32
#: OFT's random-resized-crop area (``scale=[0.9, 0.9]``) and jitter range (0.8 .. 1.2)
CROP_AREA = 0.9
JITTER = 0.2


def crop_shift(image_size: int) -> int:
    """Pixels of random shift matching a random crop of ``CROP_AREA`` of a square view."""
    return max(1, round(image_size * (1 - math.sqrt(CROP_AREA)) / 2))


def openvla_oft(
    backbone: str = DEFAULT_BACKBONE,
    *,
    chunk: int = LIBERO_CHUNK,
    cameras: Sequence[str] = ("base", "wrist"),
    image_size: int = 224,
    proprio: bool = True,
    backbone_options: dict[str, Any] | None = None,
) -> Recipe:
    """OpenVLA-OFT on ``backbone`` with its LIBERO settings (``proprio=False``: OFT's
    ``--use_proprio False`` variant)."""
    policy = PolicyConfig(
        backbone=backbone,
        head=PartSpec("parallel_l1"),
        chunk_size=chunk,
        backbone_options=dict(backbone_options or {}),
        token_sources=[PartSpec("proprio", {"projector": "mlp"})] if proprio else [],
        cameras=tuple(cameras),
        image_size=image_size,
        use_state=proprio,
        lora=LoraOptions(enabled=True, r=LORA_RANK, alpha=min(LORA_RANK, 16), dropout=0.0),
        augment=AugmentOptions(shift=crop_shift(image_size), brightness=JITTER, contrast=JITTER),
    )
    views = " + ".join(cameras)
    state = "proprio token (MLP projector)" if proprio else "no proprio"
    return Recipe(
        name="openvla-oft",
        description=(
            f"OpenVLA-OFT on {backbone}: {chunk} x 7 action placeholders decoded in parallel "
            f"(bidirectional), MLP ResNet + L1, {views} views, {state}, LoRA r={LORA_RANK} on the LM"
        ),
        policy=policy,
        train={"lr": 5e-4, "batch_size": 8},
    )

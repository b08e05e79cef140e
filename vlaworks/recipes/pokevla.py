"""PokeVLA (seed 001) and its Table VI ablation rows, as configs of one core.

The core (section V, on OpenVLA-OFT, V-A): a Prismatic VLM (here ``prismatic-tiny`` or a
backbone folder) with base + wrist views, the OpenVLA prompt, LoRA on the LM (section
VI-A3: "AdamW and LoRA"), and PokeVLA's action expert (``pokevla_expert``: learnable action
queries decoded in parallel, then latents attending to the query states + proprio, the
last-layer visual states and ``<SEG>``; L1). Three components switch on per row:

* **pre-training** (stage 1, section IV): the policy starts from a pretrained VLM folder,
  the ``backbone`` argument (``--backbone FOLDER``, e.g. ``vlaworks pretrain``'s ``OUT/vlm``);
  a row with pre-training refuses a registry name;
* **geometry** (V-C): the ``geometry_align`` aux loss (last-layer vision-token states ->
  projector -> cosine to a frozen geometry teacher; training only), with the miniature
  world's ``tabletop-depth`` teacher by default (trained once into the cache on first use,
  or ``vlaworks geometry-teacher``) or any teacher folder;
* **goal** (V-B): the ``<SEG>`` token source ``seg`` and the mask-decoding aux loss
  ``seg_mask``; the expert then cross-attends to ``<SEG>`` (it reads the ``seg`` source from
  the config). The mask loss reads each frame's target mask, so a goal row trains on data
  written with ``vlaworks generate --segmentation``.

Rows (``RECIPES``): ``pokevla-vanilla`` (no component), ``pokevla+pretraining``,
``pokevla+geometry``, ``pokevla+goal`` and ``pokevla`` (all three components).

Training values from section VI-A3: lr 1e-4, batch 8 per GPU on 8 GPUs (global 64), cosine
schedule with a 10 % warm-up (the trainer's warm-up + cosine; ``--set
train.warmup_steps=N``), 150K steps (the demo protocol sets its own budget). Not in the
paper's text, so taken from OpenVLA-OFT, which PokeVLA builds on: LoRA r = 32, alpha 16,
dropout 0 on the LM's linear layers; chunk 8 (LIBERO); the proprio state (read by the
expert, not by the LM; OFT's MLP projector); OFT's image augmentation (random crop of 90 %
of the area as a shift, brightness / contrast 0.8-1.2); geometry weight 0.5 (Spatial
Forcing's, as the paper's loss weights are missing from its text).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlaworks.data.augment import AugmentOptions
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.models.geometry.teacher import BUILTIN_TEACHER
from vlaworks.recipes.base import Recipe
from vlaworks.recipes.openvla_oft import JITTER, LIBERO_CHUNK, LORA_RANK, crop_shift

DEFAULT_BACKBONE = "prismatic-tiny"
#: the <SEG> parts (section V-B), by registry name
GOAL_TOKEN_SOURCE = "seg"
GOAL_AUX_LOSS = "seg_mask"
#: the miniature teacher's feature width (``GeometryNetConfig.width``)
TEACHER_DIM = 96


def pokevla_recipe(
    name: str,
    backbone: str,
    *,
    pretraining: bool,
    geometry: bool,
    goal: bool = False,
    chunk: int = LIBERO_CHUNK,
    cameras: Sequence[str] = ("base", "wrist"),
    image_size: int = 224,
    proprio: bool = True,
    teacher: str = BUILTIN_TEACHER,
    teacher_dim: int = TEACHER_DIM,
    backbone_options: dict[str, Any] | None = None,
) -> Recipe:
    """The PokeVLA core with the components ``pretraining``, ``geometry`` and ``goal`` switched
    on or off (module docstring); ``backbone`` must be a VLM folder when ``pretraining``."""
    if pretraining and not Path(backbone).is_dir():
        raise ValueError(
            f"Recipe {name!r} starts from a pretrained VLM: pass --backbone FOLDER (e.g. the OUT/vlm of "
            f"`vlaworks pretrain`) or --backbone prismatic-tiny --vlm pretrained; {backbone!r} is not "
            "a folder."
        )
    sources: list[PartSpec] = []
    aux: list[PartSpec] = []
    if geometry:
        aux.append(PartSpec("geometry_align", {"teacher": teacher, "teacher_dim": teacher_dim}))
    if goal:
        sources.append(PartSpec(GOAL_TOKEN_SOURCE))
        aux.append(PartSpec(GOAL_AUX_LOSS))
    policy = PolicyConfig(
        backbone=backbone,
        head=PartSpec("pokevla_expert"),
        chunk_size=chunk,
        backbone_options=dict(backbone_options or {}),
        token_sources=sources,
        aux_losses=aux,
        cameras=tuple(cameras),
        image_size=image_size,
        use_state=proprio,
        lora=LoraOptions(enabled=True, r=LORA_RANK, alpha=min(LORA_RANK, 16), dropout=0.0),
        augment=AugmentOptions(shift=crop_shift(image_size), brightness=JITTER, contrast=JITTER),
    )
    parts = [
        "pretrained VLM" if pretraining else "VLM without embodied pretraining",
        f"geometry alignment to {teacher!r}" if geometry else None,
        "<SEG> goal masks" if goal else None,
    ]
    return Recipe(
        name=name,
        description=(
            f"PokeVLA on {backbone}: action expert over {chunk}-step chunks ({' + '.join(cameras)} views, "
            f"{'proprio' if proprio else 'no proprio'}), LoRA r={LORA_RANK}; "
            + ", ".join(p for p in parts if p)
        ),
        policy=policy,
        train={"lr": 1e-4, "batch_size": 8},
    )


def pokevla_vanilla(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Table VI's first row: the core without pre-training, geometry or goal."""
    return pokevla_recipe("pokevla-vanilla", backbone, pretraining=False, geometry=False, **options)


def pokevla_pretraining(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Table VI's "+ pre-training" row: the core on a pretrained VLM folder."""
    return pokevla_recipe("pokevla+pretraining", backbone, pretraining=True, geometry=False, **options)


def pokevla_geometry(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Table VI's "+ geometry" row: the core with geometry alignment."""
    return pokevla_recipe("pokevla+geometry", backbone, pretraining=False, geometry=True, **options)


def pokevla_goal(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Table VI's "+ goal" row: the core with ``<SEG>`` goal masks (data with segmentation)."""
    return pokevla_recipe("pokevla+goal", backbone, pretraining=False, geometry=False, goal=True, **options)


def pokevla(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """PokeVLA with every component: a pretrained VLM folder, geometry alignment and ``<SEG>``."""
    return pokevla_recipe("pokevla", backbone, pretraining=True, geometry=True, goal=True, **options)

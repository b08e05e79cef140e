"""PixelVLA (seed 000) and its Table 4 ablation rows as staged recipes.

The final policy (``pixelvla``): a Prismatic VLM (DINOv2 ⊕ SigLIP -> MLP projector -> LLM,
as OpenVLA) with the multiscale pixel-aware encoder (``pixel_aware``, Eq. 3) and the visual
prompt-aware encoder (``visual_prompt``) adding tokens to the sequence, the continuous
action decoder (``resnet_decoder``: linear -> ``N_r`` ResNet blocks -> MLP, chunk 8, L1),
one third-person view at 224 x 224, and window prompts drawn from the dataset's annotations
(``prompt_mode="mixed"``: text, point, line, box, mask or text+mask per window).

Training is two stages after the VLA the paper starts from (section 4.3, implementation
details):

* ``vla``: the OpenVLA policy (256-bin action tokens, full fine-tuning, lr 2e-5), the
  "pretrained VLA" the paper initialises from. The paper loads OpenVLA's OXE weights; the
  miniature world trains it on the same data (no step count is given: 100k, as CAT);
* ``cat``, continuous action training: the prompt and pixel encoders are removed and
  everything but the new continuous action decoder is frozen; 100k steps, batch 32, lr 5e-4;
* ``pue``, pixel-level understanding enhancement: LoRA (r = 32, alpha = 2r) on the LLM,
  the prompt and pixel encoders and the decoder trained, the vision encoder and projector
  frozen; 200k steps, batch 32, lr 1e-3 (``find_unused_parameters`` for DDP: a batch
  without mask prompts leaves the mask conv unused).

Table 4 rows (``Baseline`` is the OpenVLA policy; ``+FT`` fine-tunes it on the robot data
with its own action tokens; ``+FT+CAT`` fine-tunes it through the CAT stage; ``+FT+PUE``
through the PUE stage alone; PixelVLA is CAT then PUE): ``pixelvla-baseline`` (vla),
``pixelvla+ft`` (vla, ft), ``pixelvla+ft+cat`` (vla, cat), ``pixelvla+ft+pue`` (vla, pue)
and ``pixelvla`` (vla, cat, pue). The paper's CAT and PUE train on different data (Fractal +
Bridge, then Pixel-160K); here every stage reads the one ``--data`` dataset (annotated,
so PUE finds its prompts), which CAT reads without its annotations.

``pixelvla-pi0``: PixelVLA on π0 (PaliGemma with the flow-matching action expert, as the
``pi0`` recipe), which "omits the first training stage": the π0 policy, then PUE. Without the
``pi0`` recipe's instruction augmentation, which is seed 004's training of its baseline;
seed 000 mentions none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vlaworks.data.augment import AugmentOptions
from vlaworks.models.config import LoraOptions, PartSpec, PolicyConfig
from vlaworks.recipes.base import Recipe, Stage
from vlaworks.recipes.openvla import N_BINS
from vlaworks.recipes.pi0 import pi0

DEFAULT_BACKBONE = "prismatic-tiny"
#: action chunk of the continuous action decoder (seed 000: "chunk size to 8")
CHUNK = 8
LORA_RANK = 32
BATCH_SIZE = 32
#: the parts the CAT stage removes
PROMPT_PARTS = [PartSpec("pixel_aware"), PartSpec("visual_prompt")]
#: a stage without the prompt and pixel encoders, with full weights (no LoRA)
_NO_PROMPTS = {"token_sources": [], "prompt_mode": None, "lora.enabled": False, "freeze_vision": False}
_BINS = {"type": "token", "options": {"tokenizer": "bins", "n_bins": N_BINS}}

VLA = Stage(
    "vla",
    "the OpenVLA policy (256-bin action tokens, full fine-tuning)",
    policy={**_NO_PROMPTS, "head": _BINS},
    train={"lr": 2e-5, "steps": 100_000},
)
FT = Stage(
    "ft",
    "the OpenVLA policy fine-tuned on the robot data with its action tokens",
    policy={**_NO_PROMPTS, "head": _BINS},
    train={"lr": 2e-5, "steps": 100_000},
)
CAT = Stage(
    "cat",
    "continuous action training: encoders removed, all but the decoder frozen",
    policy={**_NO_PROMPTS, "freeze_backbone": True},
    train={"lr": 5e-4, "steps": 100_000},
)
PUE = Stage(
    "pue",
    "pixel-level understanding enhancement: LoRA r=32 on the LLM, encoders and decoder trained",
    # a batch without a mask prompt leaves the prompt encoder's mask conv unused (DDP must know)
    train={"lr": 1e-3, "steps": 200_000, "find_unused_parameters": True},
)
#: Table 4 rows: recipe name -> its stages
ROWS: dict[str, tuple[Stage, ...]] = {
    "pixelvla-baseline": (VLA,),
    "pixelvla+ft": (VLA, FT),
    "pixelvla+ft+cat": (VLA, CAT),
    "pixelvla+ft+pue": (VLA, PUE),
    "pixelvla": (VLA, CAT, PUE),
}


def pixel_parts(policy: PolicyConfig) -> dict[str, Any]:
    """Policy overrides that make ``policy`` PixelVLA's PUE policy: the two encoders, mixed
    prompts, LoRA r=32 on the LLM, a frozen vision encoder."""
    return {
        "token_sources": [*policy.token_sources, *PROMPT_PARTS],
        "prompt_mode": "mixed",
        "lora": LoraOptions(enabled=True, r=LORA_RANK, alpha=2 * LORA_RANK),
        "freeze_vision": True,
    }


def pixelvla(
    backbone: str = DEFAULT_BACKBONE,
    *,
    row: str = "pixelvla",
    camera: str = "base",
    image_size: int = 224,
    decoder_blocks: int = 2,
    backbone_options: dict[str, Any] | None = None,
) -> Recipe:
    """The Table 4 ``row`` of PixelVLA on ``backbone`` (module docstring)."""
    if row not in ROWS:
        raise KeyError(f"Unknown PixelVLA row {row!r}; choose one of {sorted(ROWS)}.")
    base = PolicyConfig(
        backbone=backbone,
        head=PartSpec("resnet_decoder", {"blocks": decoder_blocks}),
        chunk_size=CHUNK,
        backbone_options=dict(backbone_options or {}),
        cameras=(camera,),
        image_size=image_size,
    )
    policy = replace(base, **pixel_parts(base))
    stages = list(ROWS[row])
    return Recipe(
        name=row,
        description=f"{row} on {backbone} (seed 000 Table 4): stages " + ", ".join(s.name for s in stages),
        policy=policy,
        train={"batch_size": BATCH_SIZE},
        stages=stages,
    )


def _row(name: str) -> Callable[..., Recipe]:
    def build(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
        return pixelvla(backbone, row=name, **options)

    build.__doc__ = f"Seed 000 Table 4 row {name!r}: stages {[s.name for s in ROWS[name]]}."
    return build


pixelvla_baseline = _row("pixelvla-baseline")
pixelvla_ft = _row("pixelvla+ft")
pixelvla_ft_cat = _row("pixelvla+ft+cat")
pixelvla_ft_pue = _row("pixelvla+ft+pue")
pixelvla_full = _row("pixelvla")


def pixelvla_pi0(backbone: str = "paligemma-tiny", **options: Any) -> Recipe:
    """PixelVLA-π0: the ``pi0`` recipe's policy (stage ``pi0``), then PUE with the flow expert
    as the action decoder (seed 000 omits CAT on π0)."""
    base = pi0(backbone, **options)
    policy = replace(base.policy, augment=AugmentOptions(), **pixel_parts(base.policy))
    stages = [
        Stage(
            "pi0",
            "the pi0 policy (flow-matching action expert, full fine-tuning)",
            policy={**_NO_PROMPTS},
            train={"lr": base.train["lr"], "steps": 100_000},
        ),
        PUE,
    ]
    return Recipe(
        name="pixelvla-pi0",
        description=f"PixelVLA-pi0 on {backbone} (seed 000): stages pi0, pue",
        policy=policy,
        train={"batch_size": BATCH_SIZE},
        stages=stages,
    )

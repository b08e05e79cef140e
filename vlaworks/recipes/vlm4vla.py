"""VLM4VLA (seed 003): any VLM + one ``<ActionQuery>`` + MLP head, Huber + BCE, no proprio.

Defaults follow the paper (section 3.2, appendix A.2): a single current-frame view at
224 x 224, no state input, all VLM parameters trained (vision encoder and word embeddings
included). Training values per benchmark setting (appendix A.2.1): LIBERO / Simpler use
chunk 4, lr 5e-5, global batch 512; CALVIN uses chunk 10, lr 2e-5, global batch 128. The
global batch is split over 8 processes as in the paper (``batch_size`` is per process).
Ablations (section 4.3, appendix A.2.5): frozen vision encoder, frozen word embeddings,
training from scratch. ``vlm4vla+proprio`` is this project's variant with a proprio token
(the demo's policy; named apart because the paper's VLM4VLA reads no state).

``vlm-fast`` is the VLM fine-tuning task of section 4.4 / Table 4 that injects action
knowledge before VLA training: the VLM writes the chunk as FAST tokens (DCT + BPE fitted
on the dataset's actions) through its own LM head, with the vision encoder trained or
frozen (``vlm-fast-freeze-vision``). It is a policy in its own right (a FAST token head);
``vlaworks export-backbone`` then hands its VLM to ``vlm4vla --backbone``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.recipes.base import Recipe

Setting = Literal["libero", "simpler", "calvin"]

#: (chunk size, learning rate, global batch) per benchmark setting, appendix A.2.1
SETTINGS: dict[str, tuple[int, float, int]] = {
    "libero": (4, 5e-5, 512),
    "simpler": (4, 5e-5, 512),
    "calvin": (10, 2e-5, 128),
}
PAPER_PROCESSES = 8
DEFAULT_BACKBONE = "qwen2.5-vl-tiny"


def vlm4vla(
    backbone: str = DEFAULT_BACKBONE,
    setting: Setting = "libero",
    *,
    camera: str = "base",
    image_size: int = 224,
    freeze_vision: bool = False,
    freeze_word_embeddings: bool = False,
    from_scratch: bool = False,
    proprio: bool = False,
) -> Recipe:
    """The VLM4VLA policy on ``backbone`` with the paper's hyper-parameters for ``setting``;
    ``proprio=True`` adds a proprio token before the ``<ActionQuery>`` (not in the paper)."""
    if setting not in SETTINGS:
        raise ValueError(f"Unknown VLM4VLA setting {setting!r}; choose one of {sorted(SETTINGS)}.")
    chunk, lr, global_batch = SETTINGS[setting]
    policy = PolicyConfig(
        backbone=backbone,
        head=PartSpec("query_mlp", {"mlp_width": 1024}),
        chunk_size=chunk,
        cameras=(camera,),
        image_size=image_size,
        use_state=proprio,
        token_sources=[PartSpec("proprio")] if proprio else [],
        freeze_vision=freeze_vision,
        freeze_word_embeddings=freeze_word_embeddings,
        from_scratch=from_scratch,
    )
    variant = [
        name
        for name, on in (
            ("frozen vision encoder", freeze_vision),
            ("frozen word embeddings", freeze_word_embeddings),
            ("trained from scratch", from_scratch),
            ("with a proprio token (not in seed 003)", proprio),
        )
        if on
    ]
    description = f"VLM4VLA on {backbone} ({setting} setting)"
    return Recipe(
        name="vlm4vla",
        description=", ".join([description, *variant]),
        policy=policy,
        train={"lr": lr, "batch_size": global_batch // PAPER_PROCESSES},
    )


def _variant(name: str, doc: str, **switches: bool) -> Callable[..., Recipe]:
    def build(backbone: str = DEFAULT_BACKBONE, setting: Setting = "libero", **options: Any) -> Recipe:
        recipe = vlm4vla(backbone, setting, **switches, **options)
        recipe.name = name
        return recipe

    build.__doc__ = doc
    return build


vlm4vla_scratch = _variant(
    "vlm4vla-scratch",
    "Lower-bound baseline (appendix A.2.5): the same network, every VLM weight re-initialised.",
    from_scratch=True,
)
vlm4vla_proprio = _variant(
    "vlm4vla+proprio",
    "Not in seed 003 (its policy reads no state): the robot state as one token before the "
    "<ActionQuery>, as OFT and PokeVLA feed it. In the miniature world it is what lets the "
    "policy know where its gripper is (BENCHMARKS.md: 16.7 % -> 76.7 % at the same budget).",
    proprio=True,
)
vlm4vla_freeze_vision = _variant(
    "vlm4vla-freeze-vision",
    "Section 4.3 ablation: the vision encoder stays frozen during VLA training.",
    freeze_vision=True,
)
vlm4vla_freeze_embeddings = _variant(
    "vlm4vla-freeze-embeddings",
    "Section 4.3 ablation: the LM word embeddings stay frozen (the action query still trains).",
    freeze_word_embeddings=True,
)


def vlm_fast(
    backbone: str = DEFAULT_BACKBONE,
    setting: Setting = "libero",
    *,
    camera: str = "base",
    image_size: int = 224,
    freeze_vision: bool = False,
    fast_vocab: int = 1024,
) -> Recipe:
    """Section 4.4 / Table 4: fine-tune the VLM to write action chunks as FAST tokens."""
    recipe = vlm4vla(backbone, setting, camera=camera, image_size=image_size, freeze_vision=freeze_vision)
    recipe.policy.head = PartSpec("token", {"tokenizer": "fast", "vocab_size": fast_vocab})
    recipe.name = "vlm-fast-freeze-vision" if freeze_vision else "vlm-fast"
    vision = "vision encoder frozen" if freeze_vision else "vision encoder trained"
    recipe.description = f"FAST action-token fine-tuning of {backbone} ({setting} setting), {vision}"
    return recipe


def vlm_fast_freeze_vision(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
    """Table 4's "Freeze Vision FT": FAST action-token fine-tuning of the LLM only."""
    return vlm_fast(backbone, freeze_vision=True, **options)

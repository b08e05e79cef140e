"""OpenVLA and seed 004's representation-preserving variants (Table II rows).

The baseline is OpenVLA: a Prismatic VLM (DINOv2 ⊕ SigLIP -> MLP projector -> LLM) that
predicts each action dimension as one of 256 bins re-using the last 256 LM vocabulary
ids, decoded autoregressively, trained on robot data only. Seed 004 adds three switches,
each a part choice here, never a fork of the core:

* **D** (III-A), partially frozen dual vision encoder: the backbone option ``dual_encoder``
  gives the backbone ``[phi_frozen(o) || phi_train(o)]`` (``vlaworks.models.vision.dual``);
* **S** (III-B), string action tokenizer: every dimension written with 4 decimals as
  single-character text tokens of the LM vocabulary (``TokenActionHead``, ``string``);
* **C** (III-C), co-training: half of the training batches are vision-language batches
  (``Recipe.cotrain = {"vl_fraction": 0.5}``), trained by next-token prediction through the
  same LM head (``VLAPolicy.text_loss``).

Registered names: ``openvla``, ``openvla+D``, ``openvla+S``, ``openvla+C``, ``openvla+DS``,
``openvla+SC`` and ``openvla+`` (= D + S + C, OpenVLA⁺). Defaults follow OpenVLA: the
``openvla`` prompt scheme, one base view at 224 x 224, full fine-tuning, one action per
step (``chunk=1``; seed 004's short horizon ``H`` is the ``chunk`` option), lr 2e-5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.recipes.base import Recipe

DEFAULT_BACKBONE = "prismatic-tiny"
#: co-training share of vision-language batches (seed 004: "50% from each type")
VL_FRACTION = 0.5
STRING_DECIMALS = 4
N_BINS = 256


def openvla(
    backbone: str = DEFAULT_BACKBONE,
    *,
    dual: bool = False,
    string: bool = False,
    cotrain: bool = False,
    chunk: int = 1,
    camera: str = "base",
    image_size: int = 224,
    lr: float = 2e-5,
    batch_size: int = 16,
    vl_samples: int = 2000,
    backbone_options: dict[str, Any] | None = None,
) -> Recipe:
    """OpenVLA on ``backbone`` with seed 004's switches D (``dual``), S (``string``), C (``cotrain``)."""
    options = {**(backbone_options or {}), **({"dual_encoder": True} if dual else {})}
    head = (
        PartSpec("token", {"tokenizer": "string", "decimals": STRING_DECIMALS})
        if string
        else PartSpec("token", {"tokenizer": "bins", "n_bins": N_BINS})
    )
    policy = PolicyConfig(
        backbone=backbone,
        head=head,
        chunk_size=chunk,
        backbone_options=options,
        cameras=(camera,),
        image_size=image_size,
        use_state=False,
    )
    letters = "".join(code for code, on in (("D", dual), ("S", string), ("C", cotrain)) if on)
    name = "openvla+" if letters == "DSC" else f"openvla+{letters}" if letters else "openvla"
    parts = [
        "partially frozen dual vision encoder" if dual else None,
        f"string action tokens ({STRING_DECIMALS} decimals)" if string else f"{N_BINS}-bin action tokens",
        f"{int(VL_FRACTION * 100)}% vision-language co-training" if cotrain else None,
    ]
    description = f"{name} on {backbone}: " + ", ".join(p for p in parts if p)
    return Recipe(
        name=name,
        description=description,
        policy=policy,
        train={"lr": lr, "batch_size": batch_size},
        cotrain={"vl_fraction": VL_FRACTION, "vl_samples": vl_samples} if cotrain else {},
    )


def _variant(letters: str) -> Callable[..., Recipe]:
    switches = {"dual": "D" in letters, "string": "S" in letters, "cotrain": "C" in letters}

    def build(backbone: str = DEFAULT_BACKBONE, **options: Any) -> Recipe:
        return openvla(backbone, **switches, **options)

    on = [k for k, v in switches.items() if v]
    build.__doc__ = f"OpenVLA with seed 004 switches {on or 'none (baseline)'} (Table II)."
    return build


openvla_base = _variant("")
openvla_d = _variant("D")
openvla_s = _variant("S")
openvla_c = _variant("C")
openvla_ds = _variant("DS")
openvla_sc = _variant("SC")
openvla_plus = _variant("DSC")

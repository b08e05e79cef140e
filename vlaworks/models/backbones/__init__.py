"""Backbones: native-prompt VLM trunks behind one contract (see ``base.py``).

``build_backbone(name_or_path, **options)`` returns a tiny random-init model for a
registry name (``prismatic-tiny``, ``qwen2.5-vl-tiny``, ``qwen3-vl-tiny``,
``paligemma-tiny``, ``paligemma2-tiny``, ``kosmos2-tiny``, ``smolvlm-tiny``) or loads a
checkpoint folder: one written by ``Backbone.save_pretrained`` or a real Hugging Face
checkpoint of a supported family (Qwen2.5-VL, Qwen3-VL, PaliGemma 1/2, Kosmos-2, SmolVLM).
``cnn`` is the plain CNN trunk of the ``bc-cnn`` floor (options ``views``, ``hidden_size``,
``channels``).
Options: ``prompt_scheme``, ``image_size`` (tiny only), ``attn_implementation``, ``dtype``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens

#: non-VLM trunks (behaviour-cloning floors), built from options only
PLAIN_NAMES = ("cnn",)
TINY_NAMES = (
    "prismatic-tiny",
    "qwen2.5-vl-tiny",
    "qwen3-vl-tiny",
    "paligemma-tiny",
    "paligemma2-tiny",
    "kosmos2-tiny",
    "smolvlm-tiny",
)


def build_backbone(name_or_path: str, **options: Any) -> Backbone:
    """A backbone from a registry name or a checkpoint folder (see the module docstring)."""
    import torch

    from vlaworks.models.backbones import hf_vlm
    from vlaworks.models.backbones.prismatic import META_FILE, PrismaticBackbone

    if isinstance(options.get("dtype"), str):
        options["dtype"] = getattr(torch, options["dtype"])
    if name_or_path == "cnn":
        from vlaworks.models.backbones.cnn import CNNBackbone

        return CNNBackbone(**options)
    if name_or_path == "prismatic-tiny":
        model: Backbone = PrismaticBackbone.tiny(**options)
    elif name_or_path in TINY_NAMES:
        model = hf_vlm.build_tiny(name_or_path.removesuffix("-tiny"), **options)
    else:
        path = Path(name_or_path)
        if not path.is_dir():
            raise ValueError(
                f"{name_or_path!r} is neither a registry name {TINY_NAMES} nor a checkpoint folder."
            )
        meta = path / META_FILE
        family = json.loads(meta.read_text())["family"] if meta.exists() else None
        if family == "prismatic":
            return PrismaticBackbone.from_pretrained(str(path), **options)
        if family == "cnn":
            from vlaworks.models.backbones.cnn import CNNBackbone

            return CNNBackbone.from_pretrained(str(path))
        return hf_vlm.load_hf_backbone(str(path), **options)
    dtype = options.get("dtype")
    return model.to(dtype) if dtype is not None else model


__all__ = ["PLAIN_NAMES", "TINY_NAMES", "Backbone", "BackboneOutput", "ExtraTokens", "build_backbone"]

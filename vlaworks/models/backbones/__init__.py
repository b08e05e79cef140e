"""Backbones: native-prompt VLM trunks behind one contract (see ``base.py``).

``PolicyConfig.backbone`` is a registry name or a backbone folder. Each registry name is a
family's small random-init model (``prismatic-tiny``, ``qwen2.5-vl-tiny``, ``qwen3-vl-tiny``,
``qwen3-vl-moe-tiny``, ``paligemma-tiny``, ``paligemma2-tiny``, ``kosmos2-tiny``,
``smolvlm-tiny``; ``cnn`` is the plain CNN trunk of the ``bc-cnn`` floor). A folder is one
written by ``Backbone.save_pretrained`` or a real Hugging Face checkpoint of a supported
family (Qwen2.5-VL, Qwen3-VL, Qwen3-VL-MoE, PaliGemma 1/2, Kosmos-2, SmolVLM).

Families live one per file in ``families/`` (:mod:`vlaworks.models.backbones.family` says
what a family class declares); :data:`BACKBONES` finds them there. Options are the
family's options dataclass (``backbone_options`` in the config), checked by
:func:`resolve_backbone` before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.backbones.family import BackboneOptions
from vlaworks.models.config import Part, PartRegistry
from vlaworks.models.options import did_you_mean, parse_options


def _family_parts() -> dict[str, Part]:
    from vlaworks.models.backbones.families import family_classes

    return {name: Part(cls.Options, cls.build) for name, cls in family_classes().items()}


#: registry name -> the family's options dataclass and builder of its registry model
BACKBONES = PartRegistry("backbone", discover=_family_parts)


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone choice checked against its family: where it comes from, its typed options
    and how to build it."""

    source: str
    options: BackboneOptions
    _build: Callable[[], Backbone]

    def build(self) -> Backbone:
        """The trunk as its family builds or loads it. The dual vision encoder
        (``options.dual_encoder``) is not applied here: ``build_policy`` applies it after
        from-scratch re-initialisation, :func:`build_backbone` right away."""
        return self._build()


def resolve_backbone(name_or_path: str, options: Mapping[str, Any]) -> BackboneSpec:
    """Check ``options`` against the family of ``name_or_path`` (a registry name, else a
    backbone folder); an unknown option, a wrong type or an unknown name is an error."""
    if name_or_path in BACKBONES:
        parsed = BACKBONES.options(name_or_path, options)
        return BackboneSpec(name_or_path, parsed, partial(BACKBONES.resolve(name_or_path).build, parsed))
    if Path(name_or_path).is_dir():
        from vlaworks.models.backbones.families import folder_family

        family, folder = folder_family(name_or_path)
        parsed = parse_options(family.Options, options, f"backbone folder {name_or_path!r} ({family.family})")
        return BackboneSpec(name_or_path, parsed, partial(family.load, folder, parsed))
    hint = did_you_mean(name_or_path, BACKBONES.names())
    raise ValueError(
        f"{name_or_path!r} is neither a registry name nor a checkpoint folder;{hint} "
        f"registry names: {', '.join(BACKBONES.names())}."
    )


def option_names(name_or_path: str) -> frozenset[str]:
    """The option names the family of ``name_or_path`` (registry name or folder) takes."""
    if name_or_path in BACKBONES:
        options = BACKBONES.resolve(name_or_path).options
    elif Path(name_or_path).is_dir():
        from vlaworks.models.backbones.families import folder_family

        options = folder_family(name_or_path)[0].Options
    else:
        resolve_backbone(name_or_path, {})  # the unknown-name error, with its hint
    return frozenset(f.name for f in fields(options))


def build_backbone(name_or_path: str, **options: Any) -> Backbone:
    """The backbone ``name_or_path`` names, built with its family's ``options`` (dual vision
    encoder included when ``dual_encoder=True``)."""
    spec = resolve_backbone(name_or_path, options)
    backbone = spec.build()
    if spec.options.dual_encoder:
        from vlaworks.models.vision.dual import make_dual_encoder

        make_dual_encoder(backbone)
    return backbone


__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneOutput",
    "BackboneSpec",
    "ExtraTokens",
    "build_backbone",
    "option_names",
    "resolve_backbone",
]

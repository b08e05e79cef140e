"""Backbone families, one file each; the registry is whatever lives here.

A module of this package defines its family as a class that mixes
:class:`~vlaworks.models.backbones.family.BackboneFamily` into a backbone and sets
``family`` in its own body (shared bases such as ``qwen_vl.QwenVLBackbone`` set none).
:func:`family_classes` imports every module and collects those classes, so adding a
family is adding its file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from pathlib import Path

from vlaworks.models.backbones.family import BackboneFamily, Folder


@cache
def family_classes() -> dict[str, type[BackboneFamily]]:
    """Every family class of this package by its registry name (imports the modules)."""
    found: dict[str, type[BackboneFamily]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, BackboneFamily)
                and cls.__module__ == module.__name__
                and "family" in cls.__dict__
            ):
                found[cls.registry_name()] = cls
    return found


def folder_family(path: str | Path) -> tuple[type[BackboneFamily], Folder]:
    """The family that saved the backbone folder ``path`` (or whose ``model_type`` a real
    checkpoint there has), and what the folder says about itself."""
    folder = Folder.read(path)
    for cls in family_classes().values():
        if cls.owns(folder):
            return cls, folder
    if folder.meta is None and folder.hf_config is None:
        reason = "it has neither vlaworks_backbone.json nor a Hugging Face config.json"
    elif folder.meta is not None:
        reason = f"its family {folder.meta.get('family')!r} is not a known one"
    else:
        reason = f"its model_type {folder.hf_config.get('model_type')!r} is not a supported family"
    supported = sorted(c.family for c in family_classes().values())
    raise ValueError(f"{path} is no backbone folder of a known family: {reason} (families: {supported}).")

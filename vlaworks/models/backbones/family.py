"""What a backbone family declares: its options dataclass, how it builds its registry model
and how it loads a folder.

A family is one class in one file of ``vlaworks/models/backbones/families/``; the backbone
registry finds it there (:func:`vlaworks.models.backbones.families.family_classes`), so
adding a family touches no other file. The class names itself (:attr:`BackboneFamily.family`,
written to the folders it saves; the registry name is ``<family>-tiny`` unless it says
otherwise), declares its :attr:`~BackboneFamily.Options` dataclass, builds the registry
model from those options (:meth:`~BackboneFamily.build`), recognises and loads the folders
it wrote or, for a Hugging Face family, a real checkpoint of its ``model_type``
(:meth:`~BackboneFamily.owns`, :meth:`~BackboneFamily.load`).

Options given with a folder cannot rebuild it: the architecture options (image and
patch size, vision tower, token merge) are then a statement of what the folder must hold,
and a mismatch is an error; ``prompt_scheme``, ``attn_implementation``, ``dtype`` (and, for
Hugging Face families, ``image_size``) apply to a folder as to a registry model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from vlaworks.models.backbones.base import Backbone

#: the file every folder written by ``Backbone.save_pretrained`` carries (family, settings)
META_FILE = "vlaworks_backbone.json"


@dataclass
class BackboneOptions:
    """Options of every backbone family."""

    #: seed 004's partially frozen dual vision encoder (frozen copy ⊕ trained copy,
    #: ``vlaworks.models.vision.dual``); applied to the built trunk by ``build_policy``
    dual_encoder: bool = False


@dataclass
class VLMOptions(BackboneOptions):
    """Options of every VLM family."""

    #: native prompt variant (each family lists its own); None: the family's default, or
    #: the scheme a folder was saved with
    prompt_scheme: str | None = None
    #: attention kernel of the ``transformers`` modules (``sdpa``, ``eager``, ...)
    attn_implementation: str = "sdpa"
    #: weights' dtype; None: float32
    dtype: Literal["float32", "bfloat16", "float16"] | None = None

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return getattr(torch, self.dtype) if self.dtype is not None else None


@dataclass(frozen=True)
class Folder:
    """What a backbone folder says about itself: ``vlaworks_backbone.json`` and a Hugging
    Face ``config.json`` (each ``None`` when absent)."""

    path: Path
    meta: dict[str, Any] | None
    hf_config: dict[str, Any] | None

    @classmethod
    def read(cls, path: str | Path) -> Folder:
        folder = Path(path)
        meta, hf = folder / META_FILE, folder / "config.json"
        return cls(
            folder,
            json.loads(meta.read_text()) if meta.exists() else None,
            json.loads(hf.read_text()) if hf.exists() else None,
        )


class BackboneFamily(ABC):
    """Class-level interface of a backbone family (mixed into its :class:`Backbone` class)."""

    #: family name, written as ``"family"`` to the folders it saves
    family: ClassVar[str]
    #: the dataclass of the family's options
    Options: ClassVar[type[BackboneOptions]] = BackboneOptions

    @classmethod
    def registry_name(cls) -> str:
        """The name ``PolicyConfig.backbone`` uses for the family's small random-init model."""
        return f"{cls.family}-tiny"

    @classmethod
    @abstractmethod
    def build(cls, options: Any) -> Backbone:
        """The registry model, built from validated ``options`` (random weights)."""

    @classmethod
    def owns(cls, folder: Folder) -> bool:
        """Whether ``folder`` holds a backbone of this family (default: its saved family name)."""
        return folder.meta is not None and folder.meta.get("family") == cls.family

    @classmethod
    @abstractmethod
    def load(cls, folder: Folder, options: Any) -> Backbone:
        """The backbone saved in ``folder`` (a folder :meth:`owns`), with ``options`` applied."""


def check_folder_agrees(folder: Folder, option: str, given: Any, held: Any) -> None:
    """An architecture option given with a folder must describe what the folder holds."""
    if given is not None and given != held:
        raise ValueError(
            f"Backbone folder {folder.path} holds {option}={held!r}; the option {option}={given!r} cannot "
            f"change a saved model. Drop the option or set it to {held!r}."
        )

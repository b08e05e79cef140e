"""The common part of the Hugging Face VLM families (one class per family in ``families/``).

Each family wraps its stock ``transformers`` model class. Image features come from the
model's own ``get_image_features``; the decoder runs on ``inputs_embeds`` with an explicit
4-D float mask and explicit position ids (Qwen's M-RoPE from ``get_rope_index``,
PaliGemma's 1-indexed positions, Kosmos-2's offset sinusoidal positions), so extra blocks
can be appended without forking transformers.

A family class states its ``model_type``, model class, image mean / std and prompt
schemes, builds its tiny config (:meth:`HFVLMBackbone.tiny_config`) and its native prompt
and image path (the :class:`NativeBackbone` hooks); building the registry model, saving
and loading folders (ours, or a real checkpoint of that ``model_type``) live here once.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from vlaworks.models.backbones.family import (
    META_FILE,
    BackboneFamily,
    Folder,
    VLMOptions,
    check_folder_agrees,
)
from vlaworks.models.backbones.native import NativeBackbone
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.models.vision.preprocess import normalize_images

#: the registry models' image and patch size (64 x 64 px views, 8 px patches)
TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8


@dataclass
class HFOptions(VLMOptions):
    """Options of the Hugging Face families."""

    #: views are resized to this square size; None: 64 (registry model), the size saved
    #: with a folder, or the checkpoint's (224 for Qwen, which resizes dynamically)
    image_size: int | None = None
    #: vision patch size of the registry model (None: 8); with a folder, what it must hold
    patch_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Backbone option {name} must be >= 1; got {value}.")


class HFVLMBackbone(NativeBackbone, BackboneFamily):
    """The wrapped ``transformers`` model, its preprocessing, building and folder I/O."""

    Options = HFOptions
    #: ``config.json``'s ``model_type`` of the family's checkpoints
    model_type: ClassVar[str]
    #: the stock ``transformers`` class the family wraps
    model_class: ClassVar[type[PreTrainedModel]]
    #: the family's image processor normalisation
    image_mean: ClassVar[tuple[float, ...]]
    image_std: ClassVar[tuple[float, ...]]
    #: native prompt variants, the first is the default
    schemes: ClassVar[tuple[str, ...]] = ("default",)

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        prompt_scheme: str | None = None,
    ) -> None:
        scheme = prompt_scheme or self.schemes[0]
        if scheme not in self.schemes:
            raise ValueError(f"{self.family}: unknown prompt_scheme {scheme!r}; use one of {self.schemes}.")
        super().__init__(tokenizer, scheme)
        self.model = model
        self.image_size = int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.hidden_size = int(model.config.get_text_config().hidden_size)

    # ----- what a family states --------------------------------------------------------
    @classmethod
    @abstractmethod
    def tiny_config(cls, tok: Any, image_size: int, patch_size: int) -> PretrainedConfig:
        """The registry model's config (small, random-init) for the tiny tokenizer ``tok``."""

    @classmethod
    def supported_attn(cls, attn_implementation: str) -> str:
        """The attention kernel to build with (a family lacking one falls back here)."""
        return attn_implementation

    @classmethod
    def checkpoint_image_size(cls, config: PretrainedConfig) -> int:
        """View size for a real checkpoint without a saved one: its vision tower's."""
        return int(config.vision_config.image_size)

    @classmethod
    def owns(cls, folder: Folder) -> bool:
        return folder.hf_config is not None and folder.hf_config.get("model_type") == cls.model_type

    # ----- building and loading --------------------------------------------------------
    @classmethod
    def build(cls, options: HFOptions) -> HFVLMBackbone:
        """A random-init tiny model of the family with the tiny offline tokenizer."""
        tok = build_tiny_tokenizer()
        size = options.image_size if options.image_size is not None else TINY_IMAGE_SIZE
        patch = options.patch_size if options.patch_size is not None else TINY_PATCH_SIZE
        cfg = cls.tiny_config(tok, size, patch)
        attn = cls.supported_attn(options.attn_implementation)
        model = cls.model_class._from_config(cfg, attn_implementation=attn)
        mean, std, scheme = cls.image_mean, cls.image_std, options.prompt_scheme
        backbone = cls(model, tok, image_size=size, mean=mean, std=std, prompt_scheme=scheme)
        dtype = options.torch_dtype
        return backbone.to(dtype) if dtype is not None else backbone

    @classmethod
    def load(cls, folder: Folder, options: HFOptions) -> HFVLMBackbone:
        """A folder written by :meth:`save_pretrained` or a real checkpoint of the family."""
        cfg = AutoConfig.from_pretrained(str(folder.path))
        check_folder_agrees(folder, "patch_size", options.patch_size, cfg.vision_config.patch_size)
        if folder.meta is not None:
            meta = folder.meta
            size, mean, std = meta["image_size"], tuple(meta["mean"]), tuple(meta["std"])
            scheme = options.prompt_scheme or meta["prompt_scheme"]
        else:
            size, mean, std = cls._processor_settings(folder.path, cfg)
            scheme = options.prompt_scheme
        model = cls.model_class.from_pretrained(
            str(folder.path),
            dtype=options.torch_dtype or torch.float32,
            attn_implementation=cls.supported_attn(options.attn_implementation),
        )
        tok = AutoTokenizer.from_pretrained(str(folder.path), padding_side="left")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        size = options.image_size if options.image_size is not None else size
        return cls(model, tok, image_size=size, mean=mean, std=std, prompt_scheme=scheme)

    @classmethod
    def _processor_settings(cls, path: Path, cfg: PretrainedConfig) -> tuple[int, tuple, tuple]:
        """Image size / mean / std from a checkpoint's ``preprocessor_config.json`` (no processor needed)."""
        pre = path / "preprocessor_config.json"
        data = json.loads(pre.read_text()) if pre.exists() else {}
        mean = tuple(data.get("image_mean", cls.image_mean))
        std = tuple(data.get("image_std", cls.image_std))
        return cls.checkpoint_image_size(cfg), mean, std

    def save_pretrained(self, path: str) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out))
        self._tokenizer.save_pretrained(str(out))
        meta = {
            "family": self.family,
            "prompt_scheme": self.prompt_scheme,
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=1))

    # ----- contract --------------------------------------------------------------------
    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, H, W]`` uint8 -> normalised ``[B * V, 3, S, S]`` in the model's dtype."""
        return normalize_images(images.flatten(0, 1), self.image_size, self.mean, self.std, self.dtype)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.lm_head(hidden)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def language_modules(self) -> list[nn.Module]:
        head = getattr(self.model, "lm_head", None)
        return [self.model.get_decoder(), *([head] if head is not None else [])]


def tiny_text_config(tok: Any) -> dict[str, Any]:
    """The registry models' language model: hidden 128 x 2 layers, ``tok``'s vocabulary."""
    return {
        "vocab_size": len(tok),
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


def tiny_vision_config(image_size: int, patch_size: int) -> dict[str, Any]:
    """The registry models' ViT (SigLIP / CLIP style): hidden 64 x 2 layers."""
    return {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": patch_size,
    }


def special_ids(tok: Any) -> dict[str, int]:
    """Id of every special token of the tiny tokenizer."""
    return {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}

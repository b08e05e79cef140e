"""Prismatic / PokeVLM (``prismatic``): DINOv2 ⊕ SigLIP -> MLP projector -> causal LM.

The registry model (``prismatic-tiny``) can swap the random-init DINOv2 ⊕ SigLIP towers for
an ImageNet-pretrained EfficientNet-lite0 (``vision="efficientnet"``,
:mod:`vlaworks.models.vision.efficientnet`), the one pretrained vision tower that installs
offline at CPU scale, or for ``bc-cnn``'s conv trunk as a hybrid-ViT stem (``vision="conv"``,
:mod:`vlaworks.models.vision.conv`).

The sequence is ``[<bos>] [view 1 patches] ... [view V patches] prompt`` (Prismatic puts
the patches right after BOS). Prompt schemes: ``"openvla"`` (default)
``"In: What action should the robot take to {instruction}?\\nOut:"`` as in OpenVLA /
seed 004, and ``"simple"`` ``"{instruction}\\n"`` (seed 003's plain style).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    Dinov2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from vlaworks.models.backbones.family import (
    META_FILE,
    BackboneFamily,
    Folder,
    VLMOptions,
    check_folder_agrees,
)
from vlaworks.models.backbones.native import LMResult, NativeBackbone, call_lm
from vlaworks.models.backbones.sequence import Piece
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.models.vision.conv import ConvFeaturizer, SpatialSoftmax
from vlaworks.models.vision.efficientnet import EfficientNetFeaturizer
from vlaworks.models.vision.featurizer import DinoSigLIPFeaturizer, VisionFeaturizer
from vlaworks.models.weights import load_weights

PROMPTS = {
    "openvla": "In: What action should the robot take to {instruction}?\nOut:",
    "simple": "{instruction}\n",
    "prefix": "{instruction}\n",
}
#: the registry model's tower input size, patch size and vision tower
TINY_IMAGE_SIZE, TINY_PATCH_SIZE, TINY_VISION = 96, 16, "dinosiglip"
#: the towers ``vision=`` names; each builds, records and rebuilds itself (``VisionFeaturizer``)
TOWERS: dict[str, type[VisionFeaturizer]] = {
    tower.kind: tower for tower in (DinoSigLIPFeaturizer, EfficientNetFeaturizer, ConvFeaturizer)
}


@dataclass
class PrismaticOptions(VLMOptions):
    """Options of the Prismatic family; with a folder, the architecture options (the last
    four) state what it must hold: the same vision tower and merge, and the patch grid
    ``image_size / patch_size``."""

    #: towers' input size (None: 96)
    image_size: int | None = None
    #: patch size: ``(image_size / patch_size)^2`` visual tokens per view (None: 16)
    patch_size: int | None = None
    #: random-init DINOv2 ⊕ SigLIP, the pretrained EfficientNet-lite0 or a random-init conv
    #: trunk whose stride is ``patch_size`` (None: dinosiglip)
    vision: Literal["dinosiglip", "efficientnet", "conv"] | None = None
    #: k x k projected patches merged into one LM token (None: 1, no merge)
    token_merge: int | None = None
    #: one more LM token per view: the spatial-softmax keypoints (expected x, y of each
    #: channel over the patch grid) of its projected patches, ``bc-cnn``'s readout (None: off)
    keypoints: bool | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "token_merge"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Backbone option {name} must be >= 1; got {value}.")


class PrismaticBackbone(NativeBackbone, BackboneFamily):
    """DINOv2 ⊕ SigLIP patch features, 2-layer GELU MLP projector, ``AutoModelForCausalLM``."""

    family = "prismatic"
    Options = PrismaticOptions

    def __init__(
        self,
        featurizer: VisionFeaturizer,
        llm: nn.Module,
        tokenizer: Any,
        prompt_scheme: str = "openvla",
        token_merge: int = 1,
        keypoints: bool = False,
    ) -> None:
        if prompt_scheme not in PROMPTS:
            raise ValueError(
                f"Unknown prismatic prompt_scheme {prompt_scheme!r}; use one of {sorted(PROMPTS)}."
            )
        super().__init__(tokenizer, prompt_scheme)
        self.featurizer = featurizer
        self.llm = llm
        self.hidden_size = int(llm.config.hidden_size)
        self.projector = nn.Sequential(
            nn.Linear(featurizer.out_dim, self.hidden_size),
            nn.GELU(),
            nn.Linear(self.hidden_size, self.hidden_size),
        )
        grid = math.isqrt(featurizer.num_patches)
        if token_merge < 1 or grid % token_merge:
            raise ValueError(
                f"token_merge must be >= 1 and divide the {grid} x {grid} patch grid; got {token_merge}."
            )
        self.token_merge = int(token_merge)
        #: Qwen2-VL-style patch merger: each k x k block of projected patches -> one LM token
        self.merger = (
            nn.Linear(self.hidden_size * token_merge**2, self.hidden_size) if token_merge > 1 else None
        )
        #: the keypoint token of each view: expected (x, y) of every projected channel -> LM width
        width = self.hidden_size
        self.keypoints = nn.Sequential(SpatialSoftmax(), nn.Linear(2 * width, width)) if keypoints else None
        self.projector.to(llm.dtype)
        for module in (self.merger, self.keypoints):
            if module is not None:
                module.to(llm.dtype)
        self._image_id = int(tokenizer.pad_token_id)

    # ----- construction ------------------------------------------------------------------
    @classmethod
    def build(cls, options: PrismaticOptions) -> PrismaticBackbone:
        """Random-init small model: LM hidden 128 x 4 layers, towers hidden 64 x 2 layers.

        ``patch_size`` sets the spatial resolution of the visual tokens (``(image_size /
        patch_size)^2`` per view): small images of small objects want small patches.
        ``vision="efficientnet"`` uses the pretrained EfficientNet-lite0 tower instead, read at
        stride 8 from the image resized to ``grid x 8`` px (the same token grid);
        ``vision="conv"`` uses ``bc-cnn``'s conv trunk at stride ``patch_size`` (a power of 2).
        ``token_merge=k`` merges each k x k block of projected patches into one LM token
        (concatenated, then a linear layer, as Qwen2-VL's patch merger): the towers keep
        their fine patches while the LM reads k² times fewer image tokens. ``keypoints=True``
        appends to each view's tokens one that states where each projected channel peaks
        (spatial softmax, as ``bc-cnn`` reads its conv features), so object coordinates are a
        linear read-out for the LM instead of something attention must assemble.
        """
        image_size = options.image_size if options.image_size is not None else TINY_IMAGE_SIZE
        patch_size = options.patch_size if options.patch_size is not None else TINY_PATCH_SIZE
        vision = options.vision or TINY_VISION
        merge = options.token_merge if options.token_merge is not None else 1
        attn, scheme = options.attn_implementation, options.prompt_scheme or "openvla"
        tok = build_tiny_tokenizer()
        featurizer = partial(TOWERS[vision].tiny, image_size, patch_size, attn)
        keypoints = bool(options.keypoints)
        model = cls._assemble(featurizer, _tiny_llm_config(tok), tok, scheme, attn, merge, keypoints)
        dtype = options.torch_dtype
        return model.to(dtype) if dtype is not None else model

    @classmethod
    def _assemble(
        cls,
        featurizer: Callable[[], VisionFeaturizer],
        llm_cfg: Any,
        tok: Any,
        prompt_scheme: str,
        attn_implementation: str = "sdpa",
        token_merge: int = 1,
        keypoints: bool = False,
    ) -> PrismaticBackbone:
        """Random-init LM from ``llm_cfg``, then the vision tower (this order fixes what a seed draws)."""
        llm_cfg._attn_implementation = attn_implementation
        llm = AutoModelForCausalLM.from_config(llm_cfg)
        return cls(featurizer(), llm, tok, prompt_scheme, token_merge, keypoints)

    @classmethod
    def from_components(
        cls,
        llm: str,
        dinov2: str,
        siglip: str,
        *,
        prompt_scheme: str = "openvla",
        dtype: torch.dtype = torch.float32,
        attn_implementation: str = "sdpa",
    ) -> PrismaticBackbone:
        """Assemble from real checkpoint folders (e.g. Qwen2.5-0.5B, dinov2-large, siglip-so400m);
        the projector starts random (trained in VLM pretraining)."""
        tok = AutoTokenizer.from_pretrained(llm)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        lm = AutoModelForCausalLM.from_pretrained(llm, dtype=dtype, attn_implementation=attn_implementation)
        siglip_cfg = SiglipVisionConfig.from_pretrained(siglip)
        siglip_cfg.vision_use_head = False
        feat = DinoSigLIPFeaturizer(
            Dinov2Model.from_pretrained(dinov2, dtype=dtype),
            SiglipVisionModel.from_pretrained(siglip, config=siglip_cfg, dtype=dtype),
        )
        return cls(feat, lm, tok, prompt_scheme)

    def save_pretrained(self, path: str) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "family": self.family,
            "prompt_scheme": self.prompt_scheme,
            "token_merge": self.token_merge,
            "keypoints": self.keypoints is not None,
            "llm": self.llm.config.to_dict(),
        }
        meta |= self.featurizer.folder_meta()
        (out / META_FILE).write_text(json.dumps(meta, indent=1))
        save_model(self, str(out / "model.safetensors"))
        self._tokenizer.save_pretrained(str(out))

    @classmethod
    def load(cls, folder: Folder, options: PrismaticOptions) -> PrismaticBackbone:
        """A folder written by :meth:`save_pretrained`; architecture options must match it."""
        meta = folder.meta
        tower = _check_architecture(folder, options)
        llm_meta = dict(meta["llm"])
        llm_cfg = AutoConfig.for_model(llm_meta.pop("model_type"), **llm_meta)
        tok = AutoTokenizer.from_pretrained(str(folder.path))
        scheme = options.prompt_scheme or meta["prompt_scheme"]
        featurizer = partial(tower.from_folder_meta, meta)
        merge, keypoints = int(meta.get("token_merge", 1)), bool(meta.get("keypoints", False))
        model = cls._assemble(featurizer, llm_cfg, tok, scheme, options.attn_implementation, merge, keypoints)
        missing, unexpected = load_weights(model, folder.path / "model.safetensors")
        if missing or unexpected:
            raise ValueError(
                f"{folder.path / 'model.safetensors'} does not match its config: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}."
            )
        dtype = options.torch_dtype
        return model.to(dtype) if dtype is not None else model

    # ----- hooks -------------------------------------------------------------------------
    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        bos = self._tokenizer.bos_token_id
        pieces = [Piece((bos,))] if bos is not None else []
        per_view = self.featurizer.num_patches // self.token_merge**2 + (self.keypoints is not None)
        # "prefix": image and text form one bidirectional prefix (PaliGemma's prefix-LM), so the
        # image tokens also read the instruction, which a causal image-first prompt never lets them
        prefix = self.prompt_scheme == "prefix"
        pieces.append(Piece((self._image_id,) * (per_view * n_views), kind="image", bidirectional=prefix))
        text = PROMPTS[self.prompt_scheme].format(instruction=instruction.strip().rstrip(".?!").lower())
        pieces.append(Piece(self.text_ids(text), bidirectional=prefix))
        return pieces

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b, v = images.shape[:2]
        feats = self.featurizer.features(images.flatten(0, 1))
        proj = self.projector(feats.to(self.projector[0].weight.dtype))
        tokens = self.merger(merge_patches(proj, self.token_merge)) if self.merger is not None else proj
        if self.keypoints is not None:
            n, p, c = proj.shape
            grid = proj.transpose(1, 2).reshape(n, c, math.isqrt(p), math.isqrt(p))
            tokens = torch.cat([tokens, self.keypoints(grid)[:, None]], dim=1)
        return tokens.reshape(b, v * tokens.shape[1], tokens.shape[2]), {}

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        return call_lm(self.llm.model, embeds, mask, position_ids, past, use_cache, output_hidden_states)

    # ----- contract ----------------------------------------------------------------------
    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm.lm_head(hidden)

    def input_embeddings(self) -> nn.Embedding:
        return self.llm.get_input_embeddings()

    def vision_modules(self) -> list[nn.Module]:
        return [self.featurizer]

    def language_modules(self) -> list[nn.Module]:
        return [self.llm]

    def vision_level_dims(self) -> tuple[int, ...]:
        return self.featurizer.level_dims()

    def vision_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        b, v = images.shape[:2]
        feats = self.featurizer.levels(images.to(self.device).flatten(0, 1), levels)
        return [f.reshape(b, v, *f.shape[1:]) for f in feats]


def merge_patches(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, g*g, C]`` row-major patch tokens -> ``[N, (g/k)^2, k*k*C]``: each k x k block's
    tokens concatenated on channels (row-major inside the block), blocks in row-major order."""
    n, p, c = tokens.shape
    g = math.isqrt(p)
    x = tokens.view(n, g // k, k, g // k, k, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, (g // k) ** 2, k * k * c)


def _tiny_llm_config(tok: Any) -> Any:
    """The tiny causal LM: Qwen2, hidden 128 x 4 layers, tied embeddings, ``tok``'s vocabulary."""
    return AutoConfig.for_model(
        "qwen2",
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _folder_tower(folder: Folder) -> type[VisionFeaturizer]:
    """The tower class a backbone folder's meta describes."""
    for tower in TOWERS.values():
        if tower.holds(folder.meta):
            return tower
    raise ValueError(
        f"Backbone folder {folder.path} records no vision tower of the prismatic family ({sorted(TOWERS)}); "
        "was it written by another vlaworks version?"
    )


def _check_architecture(folder: Folder, options: PrismaticOptions) -> type[VisionFeaturizer]:
    """The vision tower, token merge and patch grid a folder holds against the options given
    (an option left out takes the folder's tower input and patch size); returns the tower's class."""
    meta, tower = folder.meta, _folder_tower(folder)
    vision, (size, patch) = tower.kind, tower.folder_grid(meta)
    check_folder_agrees(folder, "vision", options.vision, vision)
    check_folder_agrees(folder, "token_merge", options.token_merge, int(meta.get("token_merge", 1)))
    check_folder_agrees(folder, "keypoints", options.keypoints, bool(meta.get("keypoints", False)))
    grid = size // patch
    given_size = options.image_size if options.image_size is not None else size
    given_patch = options.patch_size if options.patch_size is not None else patch
    if given_size % given_patch or given_size // given_patch != grid:
        raise ValueError(
            f"Backbone folder {folder.path} holds a {grid} x {grid} patch grid per view (image_size {size}, "
            f"patch_size {patch}); image_size={given_size} / patch_size={given_patch} describe another. "
            "Drop these options or give ones that match."
        )
    return tower

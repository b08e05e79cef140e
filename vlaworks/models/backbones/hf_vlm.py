"""Hugging Face VLM backbones with their native prompts (seed 003, appendix A.2.3).

Each family wraps the stock ``transformers`` class (``Qwen2_5_VLForConditionalGeneration``,
``Qwen3VLForConditionalGeneration``, ``PaliGemmaForConditionalGeneration`` (Gemma / Gemma2
text), ``Kosmos2ForConditionalGeneration``, ``SmolVLMForConditionalGeneration``). Image
features come from the model's own ``get_image_features``; the decoder runs on
``inputs_embeds`` with an explicit 4-D float mask and explicit position ids (Qwen's
M-RoPE from ``get_rope_index``, PaliGemma's 1-indexed positions, Kosmos-2's offset
sinusoidal positions), so extra blocks can be appended without forking transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    DynamicCache,
    Kosmos2ForConditionalGeneration,
    PaliGemmaForConditionalGeneration,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
    SmolVLMForConditionalGeneration,
)

from vlaworks.models.backbones.native import LMResult, NativeBackbone, call_lm
from vlaworks.models.backbones.sequence import Assembled, Piece, positions_1d
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.models.vision.preprocess import CLIP_MEAN, CLIP_STD, HALF, normalize_images

META_FILE = "vlaworks_backbone.json"


class HFVLMBackbone(NativeBackbone):
    """Common part of the Hugging Face families: the wrapped model, preprocessing, I/O."""

    model_class: type = nn.Module
    schemes: tuple[str, ...] = ("default",)

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

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, H, W]`` uint8 -> normalised ``[B * V, 3, S, S]`` in the model's dtype."""
        return normalize_images(images.flatten(0, 1), self.image_size, self.mean, self.std, self.dtype)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.lm_head(hidden)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

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


# ----------------------------------------------------------------------------- Qwen-VL
class QwenVLBackbone(HFVLMBackbone):
    """Qwen2.5-VL / Qwen3-VL. ``full`` (default): system + user + assistant turns (scheme 1);
    ``short``: ``<|im_start|><|vision_start|>img<|vision_end|>instruction\\n`` (scheme 2)."""

    schemes = ("full", "short")
    deepstack = False

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        vs, ve = self.token_id("<|vision_start|>"), self.token_id("<|vision_end|>")
        image = self.token_id("<|image_pad|>")
        n = self.tokens_per_image()
        views: list[Piece] = []
        for _ in range(n_views):
            views += [Piece((vs,)), Piece((image,) * n, kind="image"), Piece((ve,))]
        instr = instruction.strip()
        if self.prompt_scheme == "full":
            head = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            tail = f"What action should the robotic arm take to {instr}<|im_end|>\n<|im_start|>assistant\n"
        else:
            head, tail = "<|im_start|>", f"{instr}\n"
        return [Piece(self.text_ids(head)), *views, Piece(self.text_ids(tail))]

    def tokens_per_image(self) -> int:
        vc = self.model.config.vision_config
        if self.image_size % (vc.patch_size * vc.spatial_merge_size):
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size x spatial_merge_size "
                f"= {vc.patch_size * vc.spatial_merge_size}."
            )
        return (self.image_size // vc.patch_size // vc.spatial_merge_size) ** 2

    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``[N, 3, S, S]`` -> Qwen's flattened patches and ``image_grid_thw``
        (the layout of ``Qwen2VLImageProcessor``: frame repeated over the temporal patch,
        patches ordered by merge window)."""
        vc = self.model.config.vision_config
        p, m, tp = vc.patch_size, vc.spatial_merge_size, vc.temporal_patch_size
        n, c, h, w = x.shape
        gh, gw = h // p, w // p
        x = x[:, None].expand(n, tp, c, h, w)
        x = x.reshape(n, tp, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(n * gh * gw, c * tp * p * p)
        grid = torch.tensor([[1, gh, gw]] * n, device=x.device)
        return x, grid

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b, v = images.shape[:2]
        pv, grid = self.patchify(self.pixels(images))
        out = self.model.model.get_image_features(pv, grid, return_dict=True)
        feats = torch.cat(out.pooler_output, dim=0)
        ctx: dict[str, Any] = {"grid": grid}
        if self.deepstack:
            ctx["deepstack"] = [torch.cat(f, dim=0) for f in out.deepstack_features]
        return feats.reshape(b, -1, feats.shape[-1]), ctx

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pos, _ = self.model.model.get_rope_index(
            asm.ids,
            mm_token_type_ids=asm.is_image.int(),
            image_grid_thw=ctx["grid"],
            attention_mask=asm.valid.long(),
        )
        return pos, pos.amax(dim=(0, 2)) + 1

    def step_positions(self, next_pos: torch.Tensor, n: int) -> torch.Tensor:
        return super().step_positions(next_pos, n)[None].expand(3, -1, -1)

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        kw: dict[str, Any] = {}
        if self.deepstack and "deepstack" in ctx:
            kw = {"visual_pos_masks": ctx["image_mask"], "deepstack_visual_embeds": ctx["deepstack"]}
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config)
        return call_lm(
            self.model.model.language_model,
            embeds,
            mask,
            position_ids,
            past,
            use_cache,
            output_hidden_states,
            **kw,
        )

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.model.visual]


class Qwen25VLBackbone(QwenVLBackbone):
    family = "qwen2.5-vl"
    model_class = Qwen2_5_VLForConditionalGeneration


class Qwen3VLBackbone(QwenVLBackbone):
    """Qwen3-VL: as Qwen2.5-VL plus DeepStack (vision features added at early LM layers)."""

    family = "qwen3-vl"
    model_class = Qwen3VLForConditionalGeneration
    deepstack = True

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        ctx["image_mask"] = asm.is_image
        return super().positions(asm, ctx)


# ----------------------------------------------------------------------------- PaliGemma
class PaliGemmaBackbone(HFVLMBackbone):
    """PaliGemma 1 / 2: ``<image>... <bos> instruction \\n``. ``vlm4vla`` (default, seed 003):
    image tokens bidirectional, text causal; ``prefix``: image + text form the bidirectional
    prefix (PaliGemma's own prefix-LM)."""

    family = "paligemma"
    model_class = PaliGemmaForConditionalGeneration
    schemes = ("vlm4vla", "prefix")

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        n = (self.model.config.vision_config.image_size // self.model.config.vision_config.patch_size) ** 2
        image = Piece((self.model.config.image_token_id,) * (n * n_views), kind="image", bidirectional=True)
        text = (self._tokenizer.bos_token_id, *self.text_ids(instruction.strip() + "\n"))
        return [image, Piece(text, bidirectional=self.prompt_scheme == "prefix")]

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b = images.shape[0]
        feats = self.model.model.get_image_features(self.pixels(images)).pooler_output
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pos, nxt = super().positions(asm, ctx)
        return pos + 1, nxt + 1  # PaliGemma positions are 1-indexed

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        return call_lm(
            self.model.model.language_model, embeds, mask, position_ids, past, use_cache, output_hidden_states
        )

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.model.vision_tower, self.model.model.multi_modal_projector]


class PaliGemma2Backbone(PaliGemmaBackbone):
    family = "paligemma2"


# ----------------------------------------------------------------------------- Kosmos-2
class Kosmos2Backbone(HFVLMBackbone):
    """Kosmos-2: ``<s><image>img...</image><p>instruction\\n</p>`` (no grounding tokens).

    Kosmos-2's text transformer builds its own 2-D-only mask, so its stock embedding
    (``forward_embedding``), decoder blocks and final norm are run here in sequence with
    the explicit 4-D mask.
    """

    family = "kosmos2"
    model_class = Kosmos2ForConditionalGeneration

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        n = self.model.config.latent_query_num
        pieces = [Piece((self.token_id("<s>"),))]
        for i in range(n_views):
            if i:
                pieces.append(Piece((self.token_id("</image>"),)))
            pieces += [
                Piece((self.token_id("<image>"),)),
                Piece((self.token_id("<image>"),) * n, kind="image"),
            ]
        tail = (
            self.token_id("</image>"),
            self.token_id("<p>"),
            *self.text_ids(instruction.strip() + "\n"),
            self.token_id("</p>"),
        )
        return [*pieces, Piece(tail)]

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        # Kosmos2ForConditionalGeneration's own image path: post-LN patch states, L2-normalised,
        # resampled to latent queries by the image-to-text projection
        b = images.shape[0]
        vm = self.model.vision_model
        states = vm.model.post_layernorm(vm(pixel_values=self.pixels(images)).last_hidden_state)
        feats, _ = self.model.image_to_text_projection(nn.functional.normalize(states, dim=-1))
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.text_model.lm_head(hidden)

    @property
    def _offset(self) -> int:
        return int(self.model.config.text_config.pad_token_id) + 1

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pos = positions_1d(asm.valid) + self._offset
        return pos.masked_fill(~asm.valid, self._offset - 1), asm.valid.long().sum(-1) + self._offset

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        tm = self.model.text_model.model
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        h = tm.forward_embedding(input_ids=None, inputs_embeds=embeds, position_ids=position_ids)
        states = [h]
        for layer in tm.layers:
            h = layer(h, mask, past_key_values=past if use_cache else None)
            states.append(h)
        h = tm.layer_norm(h)
        return LMResult(h, tuple(states) if output_hidden_states else None, past if use_cache else None)

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.vision_model, self.model.image_to_text_projection]


# ----------------------------------------------------------------------------- SmolVLM
class SmolVLMBackbone(HFVLMBackbone):
    """SmolVLM (Idefics3 family), one global image per view, chat format:
    ``<|im_start|>User:<fake_token_around_image><global-img><image>...<fake_token_around_image>
    instruction<end_of_utterance>\\nAssistant:``."""

    family = "smolvlm"
    model_class = SmolVLMForConditionalGeneration

    def prompt(self, instruction: str, n_views: int) -> list[Piece]:
        fake, glob = self.token_id("<fake_token_around_image>"), self.token_id("<global-img>")
        n = self.model.model.image_seq_len
        pieces = [Piece(self.text_ids("<|im_start|>User:"))]
        for _ in range(n_views):
            pieces += [
                Piece((fake, glob)),
                Piece((self.model.config.image_token_id,) * n, kind="image"),
                Piece((fake,)),
            ]
        pieces.append(Piece(self.text_ids(f"{instruction.strip()}<end_of_utterance>\nAssistant:")))
        return pieces

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        b, v = images.shape[:2]
        pv = self.pixels(images).reshape(b, v, 3, self.image_size, self.image_size)
        feats = torch.cat(self.model.model.get_image_features(pv, return_dict=True).pooler_output, dim=0)
        return feats.reshape(b, -1, feats.shape[-1]), {}

    def run_lm(self, embeds, mask, position_ids, past, use_cache, output_hidden_states, ctx) -> LMResult:
        if past is None and use_cache:
            past = DynamicCache(config=self.model.config.text_config)
        return call_lm(
            self.model.model.text_model, embeds, mask, position_ids, past, use_cache, output_hidden_states
        )

    def vision_modules(self) -> list[nn.Module]:
        return [self.model.model.vision_model, self.model.model.connector]


FAMILIES: dict[str, type[HFVLMBackbone]] = {
    c.family: c
    for c in (
        Qwen25VLBackbone,
        Qwen3VLBackbone,
        PaliGemmaBackbone,
        PaliGemma2Backbone,
        Kosmos2Backbone,
        SmolVLMBackbone,
    )
}
MODEL_TYPES = {
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen3_vl": "qwen3-vl",
    "kosmos-2": "kosmos2",
    "smolvlm": "smolvlm",
}
PREPROCESS = {  # (mean, std) of each family's image processor
    "qwen2.5-vl": (CLIP_MEAN, CLIP_STD),
    "qwen3-vl": (HALF, HALF),
    "paligemma": (HALF, HALF),
    "paligemma2": (HALF, HALF),
    "kosmos2": (CLIP_MEAN, CLIP_STD),
    "smolvlm": (HALF, HALF),
}


def _tiny_config(family: str, tok: Any, image_size: int) -> Any:
    """Small random-init configs of each family (LM hidden 128 x 2 layers, vision hidden 64 x 2, patch 8)."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    text = {
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
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": 8,
    }
    qwen_vision = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 4,
        "out_hidden_size": 128,
        "patch_size": 8,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    qwen_ids = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }
    if family == "qwen2.5-vl":
        return AutoConfig.for_model(
            "qwen2_5_vl",
            text_config={
                **text,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": [4, 6, 6],
                },
            },
            vision_config={**qwen_vision, "window_size": 32, "fullatt_block_indexes": [1]},
            tie_word_embeddings=True,
            **qwen_ids,
        )
    if family == "qwen3-vl":
        return AutoConfig.for_model(
            "qwen3_vl",
            text_config={
                **text,
                "head_dim": 32,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": [4, 6, 6],
                    "mrope_interleaved": True,
                },
            },
            vision_config={
                **qwen_vision,
                "num_position_embeddings": (image_size // 8) ** 2,
                "deepstack_visual_indexes": [0],
            },
            tie_word_embeddings=True,
            **qwen_ids,
        )
    if family in ("paligemma", "paligemma2"):
        gemma = {
            **text,
            "model_type": "gemma" if family == "paligemma" else "gemma2",
            "head_dim": 32,
            "num_key_value_heads": 1,
        }
        return AutoConfig.for_model(
            "paligemma",
            text_config=gemma,
            vision_config={**vision, "model_type": "siglip_vision_model"},
            projection_dim=128,
            image_token_id=ids["<image>"],
            vocab_size=len(tok),
        )
    if family == "kosmos2":
        return AutoConfig.for_model(
            "kosmos-2",
            text_config={
                "vocab_size": len(tok),
                "embed_dim": 128,
                "ffn_dim": 256,
                "layers": 2,
                "attention_heads": 4,
                "pad_token_id": tok.pad_token_id,
                "bos_token_id": ids["<s>"],
                "eos_token_id": ids["</s>"],
            },
            vision_config=vision,
            latent_query_num=16,
        )
    if family == "smolvlm":
        return AutoConfig.for_model(
            "smolvlm",
            text_config={**text, "model_type": "llama"},
            vision_config=vision,
            scale_factor=2,
            image_token_id=ids["<image>"],
            tie_word_embeddings=True,
        )
    raise ValueError(f"No tiny config for family {family!r}; choose one of {sorted(FAMILIES)}.")


def _supported_attn(family: str, attn_implementation: str) -> str:
    """transformers' Gemma2 has no sdpa path (attention logit soft-capping): fall back to eager."""
    return "eager" if family == "paligemma2" and attn_implementation == "sdpa" else attn_implementation


def build_tiny(
    family: str,
    *,
    prompt_scheme: str | None = None,
    image_size: int = 64,
    attn_implementation: str = "sdpa",
    **_: Any,
) -> HFVLMBackbone:
    """A random-init tiny model of ``family`` with the tiny offline tokenizer."""
    if family not in FAMILIES:
        raise ValueError(f"Unknown backbone family {family!r}; choose one of {sorted(FAMILIES)}.")
    tok = build_tiny_tokenizer()
    cfg = _tiny_config(family, tok, image_size)
    attn_implementation = _supported_attn(family, attn_implementation)
    cls = FAMILIES[family]
    model = cls.model_class._from_config(cfg, attn_implementation=attn_implementation)
    mean, std = PREPROCESS[family]
    return cls(model, tok, image_size=image_size, mean=mean, std=std, prompt_scheme=prompt_scheme)


def _family_of(cfg: Any) -> str:
    if cfg.model_type == "paligemma":
        return "paligemma2" if cfg.text_config.model_type == "gemma2" else "paligemma"
    if cfg.model_type not in MODEL_TYPES:
        raise ValueError(
            f"Checkpoint model_type {cfg.model_type!r} is not a supported family "
            f"({sorted(MODEL_TYPES) + ['paligemma']})."
        )
    return MODEL_TYPES[cfg.model_type]


def _processor_settings(path: Path, family: str, cfg: Any) -> tuple[int, tuple, tuple]:
    """Image size / mean / std from the checkpoint's ``preprocessor_config.json`` (no processor needed)."""
    pre = path / "preprocessor_config.json"
    data = json.loads(pre.read_text()) if pre.exists() else {}
    mean = tuple(data.get("image_mean", PREPROCESS[family][0]))
    std = tuple(data.get("image_std", PREPROCESS[family][1]))
    # Qwen processors resize dynamically; seed 003 trains every VLM at 224 x 224
    size = 224 if family.startswith("qwen") else int(cfg.vision_config.image_size)
    return size, mean, std


def load_hf_backbone(
    path: str,
    *,
    prompt_scheme: str | None = None,
    image_size: int | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
    **_: Any,
) -> HFVLMBackbone:
    """Load a folder written by ``save_pretrained`` or a real checkpoint of a supported family."""
    folder = Path(path)
    cfg = AutoConfig.from_pretrained(path)
    family = _family_of(cfg)
    meta_file = folder / META_FILE
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        size, mean, std = meta["image_size"], tuple(meta["mean"]), tuple(meta["std"])
        prompt_scheme = prompt_scheme or meta["prompt_scheme"]
    else:
        size, mean, std = _processor_settings(folder, family, cfg)
    cls = FAMILIES[family]
    model = cls.model_class.from_pretrained(
        path, dtype=dtype or torch.float32, attn_implementation=_supported_attn(family, attn_implementation)
    )
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return cls(model, tok, image_size=image_size or size, mean=mean, std=std, prompt_scheme=prompt_scheme)

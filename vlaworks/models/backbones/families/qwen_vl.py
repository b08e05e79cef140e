"""What the Qwen-VL families share: chat prompt, patch layout, M-RoPE positions (not a family).

Prompt schemes (seed 003, appendix A.2.3): ``full`` (default) is the system + user +
assistant chat turns (scheme 1); ``short`` is
``<|im_start|><|vision_start|>img<|vision_end|>instruction\\n`` (scheme 2).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from transformers import DynamicCache, PretrainedConfig

from vlaworks.models.backbones.hf import HFVLMBackbone
from vlaworks.models.backbones.native import LMResult, call_lm
from vlaworks.models.backbones.sequence import Assembled, Piece

#: Qwen processors resize dynamically; seed 003 trains every VLM at 224 x 224
CHECKPOINT_IMAGE_SIZE = 224


class QwenVLBackbone(HFVLMBackbone):
    """Qwen2.5-VL / Qwen3-VL / Qwen3-VL-MoE: see the module docstring."""

    schemes = ("full", "short")
    #: Qwen3-VL adds vision features at early LM layers (DeepStack)
    deepstack: ClassVar[bool] = False

    @classmethod
    def checkpoint_image_size(cls, config: PretrainedConfig) -> int:
        return CHECKPOINT_IMAGE_SIZE

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
        b = images.shape[0]
        pv, grid = self.patchify(self.pixels(images))
        out = self.model.model.get_image_features(pv, grid, return_dict=True)
        feats = torch.cat(out.pooler_output, dim=0)
        ctx: dict[str, Any] = {"grid": grid}
        if self.deepstack:
            ctx["deepstack"] = [torch.cat(f, dim=0) for f in out.deepstack_features]
        return feats.reshape(b, -1, feats.shape[-1]), ctx

    def positions(self, asm: Assembled, ctx: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """M-RoPE positions from the model's own ``get_rope_index`` (which needs the image
        token mask as ``mm_token_type_ids`` when the LM runs on ``inputs_embeds``)."""
        if self.deepstack:
            ctx["image_mask"] = asm.is_image
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


def qwen_vision_config(patch_size: int) -> dict[str, Any]:
    """The Qwen registry models' vision tower: hidden 64 x 2 blocks, 2 x 2 patch merger."""
    return {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 4,
        "out_hidden_size": 128,
        "patch_size": patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


def qwen_token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The image / video / vision-bracket token ids a Qwen-VL config names."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }

"""The inputs_embeds path equals each model's own input_ids + pixel_values path, and the
built prompts decode to the native templates of seed 003 (appendix A.2.3)."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.sequence import assemble

INSTR = "pick up cube"


def _native_inputs(m, v: int = 1):
    asm = assemble(m.build_prompts([INSTR], v), [], m.tokenizer.pad_token_id)
    return asm


def _images(v: int = 1) -> torch.Tensor:
    return torch.randint(
        0, 256, (1, v, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


@pytest.mark.parametrize(
    "name,scheme",
    [
        ("qwen2.5-vl-tiny", "full"),
        ("qwen2.5-vl-tiny", "short"),
        ("qwen3-vl-tiny", "full"),
        ("qwen3-vl-moe-tiny", "full"),
        ("qwen3-vl-moe-tiny", "short"),
    ],
)
@torch.no_grad()
def test_qwen_matches_native(name, scheme):
    torch.manual_seed(0)
    m = build_backbone(name, prompt_scheme=scheme).eval()
    x = _images(2)
    asm = _native_inputs(m, 2)
    pv, grid = m.patchify(m.pixels(x))
    ref = m.model.model(
        input_ids=asm.ids,
        attention_mask=asm.valid.long(),
        pixel_values=pv,
        image_grid_thw=grid,
        mm_token_type_ids=asm.is_image.int(),
    ).last_hidden_state
    torch.testing.assert_close(m(x, [INSTR]).hidden, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name,scheme",
    [("paligemma-tiny", "vlm4vla"), ("paligemma-tiny", "prefix"), ("paligemma2-tiny", "vlm4vla")],
)
@torch.no_grad()
def test_paligemma_matches_native(name, scheme):
    torch.manual_seed(0)
    m = build_backbone(name, prompt_scheme=scheme).eval()
    x = _images()
    asm = _native_inputs(m)
    token_type = (~asm.is_image).long() if scheme == "vlm4vla" else torch.zeros_like(asm.ids)
    ref = m.model.model(
        input_ids=asm.ids,
        attention_mask=asm.valid.long(),
        pixel_values=m.pixels(x),
        token_type_ids=token_type,
    ).last_hidden_state
    torch.testing.assert_close(m(x, [INSTR]).hidden, ref, atol=1e-5, rtol=0)


@torch.no_grad()
def test_kosmos2_matches_native():
    torch.manual_seed(0)
    m = build_backbone("kosmos2-tiny").eval()
    x = _images()
    asm = _native_inputs(m)
    ref = m.model(
        input_ids=asm.ids,
        attention_mask=asm.valid.long(),
        pixel_values=m.pixels(x),
        image_embeds_position_mask=asm.is_image.long(),
        output_hidden_states=True,
    )
    h = m(x, [INSTR], output_hidden_states=True)
    torch.testing.assert_close(m.lm_logits(h.hidden), ref.logits, atol=1e-4, rtol=0)


@torch.no_grad()
def test_smolvlm_matches_native():
    torch.manual_seed(0)
    m = build_backbone("smolvlm-tiny").eval()
    x = _images(2)
    asm = _native_inputs(m, 2)
    pv = m.pixels(x).reshape(1, 2, 3, 64, 64)
    ref = m.model.model(input_ids=asm.ids, attention_mask=asm.valid.long(), pixel_values=pv).last_hidden_state
    torch.testing.assert_close(m(x, [INSTR]).hidden, ref, atol=1e-5, rtol=0)


def _decoded(name: str, **options) -> str:
    m = build_backbone(name, **options)
    ids = _native_inputs(m).ids[0].tolist()
    return m.tokenizer.decode(ids, skip_special_tokens=False)


def test_prompt_templates():
    q_img = "<|vision_start|>" + "<|image_pad|>" * 16 + "<|vision_end|>"
    assert _decoded("qwen2.5-vl-tiny") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        + q_img
        + "What action should the robotic arm take to pick up cube<|im_end|>\n<|im_start|>assistant\n"
    )
    assert _decoded("qwen3-vl-tiny", prompt_scheme="short") == "<|im_start|>" + q_img + "pick up cube\n"
    assert _decoded("qwen3-vl-moe-tiny") == _decoded("qwen3-vl-tiny")  # Qwen3-VL's chat prompt
    assert _decoded("paligemma-tiny") == "<image>" * 64 + "<bos>pick up cube\n"
    assert _decoded("kosmos2-tiny") == "<s><image>" + "<image>" * 16 + "</image><p>pick up cube\n</p>"
    assert _decoded("smolvlm-tiny") == (
        "<|im_start|>User:<fake_token_around_image><global-img>"
        + "<image>" * 16
        + "<fake_token_around_image>pick up cube<end_of_utterance>\nAssistant:"
    )
    assert _decoded("prismatic-tiny") == (
        "<bos>" + "<pad>" * 36 + "In: What action should the robot take to pick up cube?\nOut:"
    )


@torch.no_grad()
def test_qwen3_vl_moe_routes_tokens_through_experts_and_reloads_as_its_family(tmp_path):
    """The MoE family is its own class: sparse expert blocks in the LM, found again by its
    model_type (not Qwen3-VL's) when loaded from a save_pretrained folder."""
    from transformers import Qwen3VLMoeForConditionalGeneration

    from vlaworks.models.backbones.families.qwen3_vl_moe import Qwen3VLMoeBackbone

    torch.manual_seed(0)
    m = build_backbone("qwen3-vl-moe-tiny").eval()
    assert isinstance(m.model, Qwen3VLMoeForConditionalGeneration)
    experts = [layer.mlp.experts for layer in m.model.model.language_model.layers]
    assert experts and all(e.num_experts == 4 for e in experts)
    m.save_pretrained(str(tmp_path))
    again = build_backbone(str(tmp_path), dtype="float32").eval()
    assert type(again) is Qwen3VLMoeBackbone
    x = _images(2)
    torch.testing.assert_close(again(x, [INSTR]).hidden, m(x, [INSTR]).hidden, atol=1e-6, rtol=0)

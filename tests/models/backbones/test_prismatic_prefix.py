"""Prismatic's ``prefix`` prompt scheme: image and instruction tokens form one bidirectional
prefix (PaliGemma's prefix-LM), so the image tokens read the instruction; causal schemes keep
them blind to it."""

from __future__ import annotations

import pytest
import torch

from vlaworks.models.backbones import build_backbone


def _image_states(scheme: str, instruction: str) -> torch.Tensor:
    torch.manual_seed(0)
    m = build_backbone("prismatic-tiny", image_size=32, patch_size=8, prompt_scheme=scheme).eval()
    images = torch.randint(0, 256, (1, 1, 3, 32, 32), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    bos, image, _ = m.prompt(instruction, 1)
    with torch.no_grad():
        hidden = m(images, [instruction]).hidden
    return hidden[0, len(bos.ids) : len(bos.ids) + len(image.ids)]


@pytest.mark.parametrize("scheme,reads_instruction", [("simple", False), ("prefix", True)])
def test_image_tokens_read_the_instruction_only_in_the_prefix(scheme: str, reads_instruction: bool) -> None:
    a = _image_states(scheme, "point to the red cube")
    b = _image_states(scheme, "point to the tan bowl")
    assert torch.equal(a, b) is not reads_instruction


def test_prefix_scheme_is_saved_with_the_backbone(tmp_path) -> None:
    m = build_backbone("prismatic-tiny", image_size=32, patch_size=8, prompt_scheme="prefix")
    m.save_pretrained(str(tmp_path / "vlm"))
    again = build_backbone(str(tmp_path / "vlm"))
    assert again.prompt_scheme == "prefix"
    assert all(p.bidirectional for p in again.prompt("pick up the cube", 1)[1:])

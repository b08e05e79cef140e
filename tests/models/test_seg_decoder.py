"""The SAM-style coarse-to-fine decoder: shapes, the coarse logits as the fine stage's dense
prompt, and the Hugging Face SAM load path on a tiny random checkpoint (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import SamConfig, SamModel

from vlaworks.models.seg_decoder import build_decoder, conv_decoder, sam_decoder

pytestmark = pytest.mark.usefixtures("one_thread")


def _views(n: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


def test_conv_decoder_shapes_and_coarse_logits_prompt_the_fine_stage() -> None:
    torch.manual_seed(0)
    decoder = conv_decoder(width=32, grid=4, heads=2)
    assert decoder.mask_size == 16
    prompts = torch.randn(3, 1, 32)
    coarse, fine = decoder(_views(3, 40), prompts)
    assert coarse.shape == fine.shape == (3, 16, 16)
    assert decoder.image_encoder(_views(2, 40)).shape == (2, 32, 4, 4)
    # the fine stage reads the coarse logits (SAM's mask embedding as its dense prompt):
    # changing only the coarse decoder changes the fine masks
    views = _views(3, 40)
    with torch.no_grad():
        _, before = decoder(views, prompts)
        decoder.coarse.upscale_conv2.bias.add_(5.0)
        _, after = decoder(views, prompts)
    assert not torch.allclose(before, after)


def test_bad_decoder_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        conv_decoder(width=30, grid=4, heads=4)
    with pytest.raises(ValueError, match="needs sam_path"):
        build_decoder("sam", width=32, grid=4, heads=2, sam_path=None, train_sam_encoder=False)
    with pytest.raises(ValueError, match="No SAM checkpoint"):
        sam_decoder(tmp_path)


def tiny_sam(folder: Path, width: int = 32) -> SamModel:
    """A random two-layer SAM at 64 px (8 x 8 features), saved to ``folder`` and reloaded."""
    torch.manual_seed(0)
    config = SamConfig(
        vision_config={
            "hidden_size": 32, "output_channels": width, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1],
            "num_pos_feats": width // 2,
        },
        prompt_encoder_config={
            "hidden_size": width, "image_size": 64, "patch_size": 8, "mask_input_channels": 8
        },
        mask_decoder_config={"hidden_size": width, "mlp_dim": 64, "num_attention_heads": 2,
                             "iou_head_hidden_dim": width},
    )
    SamModel(config).save_pretrained(folder)
    return SamModel.from_pretrained(folder)


def test_hf_sam_checkpoint_load_path(tmp_path: Path) -> None:
    sam = tiny_sam(tmp_path / "sam")
    decoder = sam_decoder(tmp_path / "sam")
    assert (decoder.grid, decoder.mask_size, decoder.width) == (8, 32, 32)
    torch.testing.assert_close(decoder.image_positions(), sam.get_image_wide_positional_embeddings())
    loaded = sam.mask_decoder.state_dict()
    for name, tensor in decoder.coarse.state_dict().items():
        assert torch.equal(tensor, loaded[name]) and torch.equal(decoder.fine.state_dict()[name], tensor)
    assert decoder.fine.iou_token.weight is not decoder.coarse.iou_token.weight  # a copy, trained apart

    prompts = torch.randn(2, 1, 32, requires_grad=True)
    coarse, fine = decoder(_views(2, 48), prompts)
    assert coarse.shape == fine.shape == (2, 32, 32)
    # the coarse stage is SAM's own mask decoder on SAM's own image embeddings
    embedding = decoder.image_encoder(_views(2, 48).zero_())
    no_mask = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(2, -1, 8, 8)
    positions = sam.get_image_wide_positional_embeddings().expand(2, -1, -1, -1)
    with torch.no_grad():
        expected, _ = sam.mask_decoder(
            embedding, positions, prompts[:, None].detach(), no_mask, multimask_output=False
        )
        got, _ = decoder(_views(2, 48).zero_(), prompts.detach())
    torch.testing.assert_close(got, expected[:, 0, 0])
    (coarse.sum() + fine.sum()).backward()
    assert prompts.grad.abs().sum() > 0
    assert decoder.coarse.mask_tokens.weight.grad.abs().sum() > 0
    assert decoder.fine.mask_tokens.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in decoder.image_encoder.parameters())  # frozen, as LISA's SAM encoder

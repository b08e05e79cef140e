"""PixelVLA's SAM-style visual prompt encoder: per-kind tokens, padding, Fourier features."""

from __future__ import annotations

import pytest
import torch

from vlaworks.batch import Batch, VisualPrompt
from vlaworks.models.tokens.visual_prompt import (
    PROMPT_BLOCK,
    TYPES,
    VisualPromptOptions,
    VisualPromptTokens,
)


class _Width:
    hidden_size = 12


def _source(**options) -> VisualPromptTokens:
    torch.manual_seed(0)
    return VisualPromptTokens(12, views=2, options=VisualPromptOptions(width=16, **options))


def _batch(prompts: list[list[VisualPrompt]]) -> Batch:
    b = len(prompts)
    return Batch(
        images=torch.zeros(b, 2, 3, 16, 16, dtype=torch.uint8),
        instructions=["pick"] * b,
        camera_names=("base", "wrist"),
        visual_prompts=prompts,
    )


def _mask() -> torch.Tensor:
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[2:9, 4:12] = True
    return mask


def test_every_kind_gives_the_same_token_layout() -> None:
    source = _source(mask_grid=2)
    rows = [
        [],
        [VisualPrompt("point", 0, ((0.25, 0.5),))],
        [VisualPrompt("line", 1, ((0.1, 0.2), (0.8, 0.9)))],
        [VisualPrompt("box", 0, ((0.1, 0.2), (0.5, 0.6)))],
        [VisualPrompt("mask", 0, (), _mask())],
    ]
    (block,) = source.tokens(_batch(rows), _Width())
    assert block.name == PROMPT_BLOCK and block.embeds.shape == (5, 4, 12) and source.length == 4
    feats = source.encode(rows)
    pad = source.type_embed.weight[TYPES.index("not_a_prompt")]
    assert torch.equal(feats[0], pad.expand(4, -1))  # text only: all "not a prompt"
    point = (
        source.positional(torch.tensor([0.25, 0.5]))
        + source.type_embed.weight[0]
        + source.view_embed.weight[0]
    )
    torch.testing.assert_close(feats[1, 0], point)
    assert torch.equal(feats[1, 1:], pad.expand(3, -1))
    for row, types in ((2, ("line_start", "line_end")), (3, ("box_corner_tl", "box_corner_br"))):
        assert not torch.equal(feats[row, 0], feats[row, 1])
        assert torch.equal(feats[row, 2:], pad.expand(2, -1))
        view = 1 if row == 2 else 0
        corner = source.positional(torch.tensor(rows[row][0].coords[1]))
        torch.testing.assert_close(
            feats[row, 1],
            corner + source.type_embed.weight[TYPES.index(types[1])] + source.view_embed.weight[view],
        )
    assert not any(torch.equal(feats[4, k], pad) for k in range(4))  # a 2 x 2 mask grid fills the slot
    torch.testing.assert_close(block.embeds, source.mlp(feats))


def test_a_rows_tokens_do_not_depend_on_its_batch() -> None:
    source = _source(mask_grid=3, max_prompts=2)
    alone = source.encode([[VisualPrompt("point", 0, ((0.3, 0.3),))]])
    mixed = source.encode(
        [[VisualPrompt("point", 0, ((0.3, 0.3),))], [VisualPrompt("mask", 1, (), _mask())] * 2]
    )
    assert source.length == 18 and mixed.shape == (2, 18, 16)
    torch.testing.assert_close(alone[0], mixed[0])


def test_a_mask_token_says_where_in_its_cell_the_mask_lies() -> None:
    source = _source(mask_grid=2)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # a 2 x 2 px object in the top-left cell ...
    masks[1, 4:6, 4:6] = True  # ... and the same object one conv pixel (4 px) further, same cell
    cells, touched = source.mask_cells(masks)
    assert touched.tolist() == [[True, False, False, False]] * 2
    centres = torch.tensor([[1 / 16, 1 / 16], [5 / 16, 5 / 16]])
    shape = cells[:, 0] - source.positional(centres)  # what is left is the object's own feature
    torch.testing.assert_close(shape[0], shape[1])
    assert (cells[0, 0] - cells[1, 0]).norm() > 0.5 * source.positional(centres[0]).norm()
    pad = source.type_embed.weight[TYPES.index("not_a_prompt")]
    feats = source.encode([[VisualPrompt("mask", 0, (), m)] for m in masks])
    assert torch.equal(feats[:, 1:], pad.expand(2, 3, -1))  # untouched cells are padding


def test_mask_prompt_trains_the_conv() -> None:
    source = _source()
    (block,) = source.tokens(_batch([[VisualPrompt("mask", 0, (), _mask())]]), _Width())
    block.embeds.sum().backward()
    assert source.mask_conv[0].weight.grad.abs().sum() > 0
    assert source.type_embed.weight.grad[TYPES.index("mask")].abs().sum() > 0


def test_fourier_features_are_sin_cos_pairs() -> None:
    source = _source()
    pe = source.positional(torch.rand(5, 2))
    half = pe.shape[-1] // 2
    torch.testing.assert_close(pe[:, :half] ** 2 + pe[:, half:] ** 2, torch.ones(5, half))
    assert "gaussian" in source.state_dict()  # the fixed matrix travels with the checkpoint


def test_bad_prompts_are_clear_errors() -> None:
    source = _source()
    with pytest.raises(ValueError, match="at most 1"):
        source.encode([[VisualPrompt("point", 0, ((0.1, 0.1),))] * 2])
    with pytest.raises(ValueError, match="needs 2"):
        source.encode([[VisualPrompt("box", 0, ((0.1, 0.1),))]])
    with pytest.raises(ValueError, match="view 3"):
        source.encode([[VisualPrompt("point", 3, ((0.1, 0.1),))]])
    with pytest.raises(ValueError, match="needs batch.visual_prompts"):
        source.tokens(
            Batch(
                images=torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8),
                instructions=["a"],
                camera_names=("base", "wrist"),
            ),
            _Width(),
        )

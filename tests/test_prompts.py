"""Prompt modes: deterministic point / line / box / mask prompts from a target mask."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.prompts import (
    PIXEL_MASKS_KEY,
    PROMPT_MODES,
    VISUAL_PROMPTS_KEY,
    CameraPrompt,
    check_prompt_mode,
    mask_prompt,
    prompt_inputs,
)


def _mask() -> np.ndarray:
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:4, 5:15] = True  # a horizontal bar: rows 2-3, columns 5-14
    return mask


def test_prompts_of_a_mask_by_hand() -> None:
    mask = _mask()
    point = mask_prompt("point", mask, "base")
    ((x, y),) = point.coords
    assert mask[int(y * 10), int(x * 20)]  # inside the mask, at the pixel nearest the centroid
    assert abs(x - 0.5) <= 0.05 and 0.2 <= y <= 0.4
    box = mask_prompt("box", mask, "base")
    assert box.coords == ((5 / 20, 2 / 10), (15 / 20, 4 / 10))  # pixel edges, as the annotations
    line = mask_prompt("line", mask, "wrist")
    (x0, y0), (x1, y1) = line.coords
    assert line.camera == "wrist" and x0 == pytest.approx(5.5 / 20) and x1 == pytest.approx(14.5 / 20)
    assert all(mask[int(v * 10), int(u * 20)] for u, v in line.coords)  # both ends inside
    dense = mask_prompt("mask", mask, "base")
    assert dense.kind == "mask" and np.array_equal(dense.mask, mask)


def test_modes_name_what_the_observation_carries() -> None:
    mask = _mask()
    assert prompt_inputs("text", mask, "base") == {}
    assert prompt_inputs("point", np.zeros_like(mask), "base") == {}  # target out of view: text only
    masked = prompt_inputs("text+mask", mask, "base")
    assert list(masked) == [PIXEL_MASKS_KEY] and np.array_equal(masked[PIXEL_MASKS_KEY]["base"], mask)
    for mode in ("point", "line", "box", "mask"):
        (prompt,) = prompt_inputs(mode, mask, "base")[VISUAL_PROMPTS_KEY]
        assert isinstance(prompt, CameraPrompt) and prompt.kind == mode
    assert set(PROMPT_MODES) == {"text", "point", "line", "box", "mask", "text+mask"}
    assert check_prompt_mode("mixed", training=True) == "mixed"
    with pytest.raises(ValueError, match="Unknown prompt mode 'mixed'"):
        check_prompt_mode("mixed")
    with pytest.raises(ValueError, match="takes 2"):
        CameraPrompt("box", "base", ((0.1, 0.1),))

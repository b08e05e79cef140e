"""Visual prompts derived from masks: inside the object, the mask's box, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.annotate.prompts import derive_prompts


def _pixel(point: tuple[float, float], height: int, width: int) -> tuple[int, int]:
    x, y = point
    return int(y * height), int(x * width)  # normalised pixel centre -> (row, col)


def test_points_line_and_box_lie_on_an_l_shaped_mask():
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:18, 3:7] = 1  # vertical bar
    mask[14:18, 3:25] = 1  # horizontal bar: the L's convex hull is mostly outside the mask
    prompts = derive_prompts(mask, num_points=5, rng=np.random.default_rng(0))
    assert len(prompts.points) == 5 and len(set(prompts.points)) == 5
    assert all(mask[_pixel(p, 20, 30)] for p in prompts.points)
    (x0, y0), (x1, y1) = prompts.line
    for t in np.linspace(0, 1, 50):
        assert mask[_pixel((x0 + t * (x1 - x0), y0 + t * (y1 - y0)), 20, 30)]
    assert np.hypot((x1 - x0) * 30, (y1 - y0) * 20) > 8  # the longest of the segments inside, not a dot
    assert prompts.box == (3 / 30, 2 / 20, 25 / 30, 18 / 20)


def test_prompts_are_reproducible_and_handle_one_pixel():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2:8, 3:9] = 1
    a = derive_prompts(mask, 3, np.random.default_rng(7))
    b = derive_prompts(mask, 3, np.random.default_rng(7))
    assert a == b
    dot = np.zeros((10, 10), dtype=np.uint8)
    dot[4, 5] = 1
    p = derive_prompts(dot, 3, np.random.default_rng(0))
    assert set(p.points) == {(0.55, 0.45)} and p.line == ((0.55, 0.45), (0.55, 0.45))
    assert p.box == (0.5, 0.4, 0.6, 0.5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="non-empty mask"):
        derive_prompts(np.zeros((4, 4)), 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_points"):
        derive_prompts(np.ones((4, 4)), 0, np.random.default_rng(0))

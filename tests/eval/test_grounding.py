"""Grounding benchmark: parsing, point-in-mask, box IoU, free-space regions and counts on hand-made truth."""

import numpy as np
import pytest
import torch
from torch import nn

from vlaworks.eval.grounding import (
    GROUNDING_KINDS,
    GroundingItem,
    grounding_counts,
    grounding_items,
    grounding_table,
    parse_box,
    parse_point,
    point_in_region,
    score_item,
    write_grounding_report,
)
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.processing import PolicyProcessor
from vlaworks.sim.vl_data import relation_region


def square(h: int, w: int, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[rows, cols] = True
    return mask


def item(kind: str, answer: str = "", region=None, box=None) -> GroundingItem:
    return GroundingItem(np.zeros((8, 8, 3), np.uint8), "q", kind, answer, region, box)


def test_parsing_takes_the_first_numbers_or_fails():
    np.testing.assert_allclose(parse_point("at (0.25, 0.75) then (0.9, 0.9)"), [0.25, 0.75])
    assert parse_point("(0.25") is None and parse_point("the red cube") is None
    np.testing.assert_allclose(parse_box("[0.1, 0.2, 0.3, 0.4]"), [0.1, 0.2, 0.3, 0.4])
    assert parse_box("[0.1, 0.2, 0.3]") is None


def test_point_in_region_uses_the_pixel_under_the_point():
    region = square(4, 4, slice(1, 3), slice(2, 4))  # rows 1-2, columns 2-3
    assert point_in_region(np.array([0.5, 0.25]), region)  # pixel (u=2, v=1)
    assert point_in_region(np.array([1.0, 0.74]), region)  # the far edge belongs to the last pixel
    assert not point_in_region(np.array([0.49, 0.5]), region)  # u = 1
    assert not point_in_region(np.array([0.6, 0.75]), region)  # v = 3
    assert not point_in_region(np.array([1.01, 0.5]), region)  # outside the image
    assert not point_in_region(np.array([-0.1, 0.5]), region)
    assert not point_in_region(None, region)


def test_score_item_per_kind():
    region = square(4, 4, slice(0, 2), slice(0, 2))
    assert score_item(item("point", region=region), "(0.10, 0.40)")
    assert not score_item(item("point", region=region), "(0.60, 0.40)")
    assert not score_item(item("affordance", region=region), "grasp it")  # parse failure
    box = np.array([0.2, 0.2, 0.6, 0.6])
    assert score_item(item("box", box=box), "[0.22, 0.21, 0.61, 0.58]")
    assert not score_item(item("box", box=box), "[0.40, 0.40, 0.80, 0.80]")  # IoU 1/7
    assert not score_item(item("box", box=box), "[0.6, 0.6, 0.2, 0.2]")  # inverted
    assert score_item(item("spatial", "the red cube"), "The red cube.")
    assert not score_item(item("spatial", "yes"), "no")


def test_free_space_region_on_hand_made_masks():
    # 10 x 10 image: table everywhere but the top row; an object at columns 4-5, rows 4-5
    table = np.ones((10, 10), dtype=bool)
    table[0] = False
    objects = square(10, 10, slice(4, 6), slice(4, 6))
    box = np.array([0.4, 0.4, 0.6, 0.6])
    left = relation_region((10, 10), box, "to the left of")
    # left of x0 = 0.4 by at most 0.2 (pixel centres 0.25, 0.35: columns 2-3), |v - 0.5| <= 0.1 (rows 4-5)
    np.testing.assert_array_equal(left, square(10, 10, slice(4, 6), slice(2, 4)))
    behind = relation_region((10, 10), box, "behind")
    np.testing.assert_array_equal(behind, square(10, 10, slice(2, 4), slice(4, 6)))
    front = relation_region((10, 10), box, "in front of")
    np.testing.assert_array_equal(front, square(10, 10, slice(6, 8), slice(4, 6)))
    region = table & ~objects & relation_region((10, 10), box, "to the right of")
    np.testing.assert_array_equal(region, square(10, 10, slice(4, 6), slice(6, 8)))
    free_space = item("free_space", region=region)
    assert score_item(free_space, "(0.65, 0.45)")
    assert not score_item(free_space, "(0.55, 0.45)")  # on the object
    assert not score_item(free_space, "(0.35, 0.45)")  # free, but to the left
    assert not score_item(free_space, "(0.85, 0.45)")  # right, but beyond the reach
    with pytest.raises(ValueError, match="Unknown relation"):
        relation_region((10, 10), box, "above")


class Answerer(nn.Module):
    """Answers from a lookup table by prompt."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers
        self.processor = PolicyProcessor(("base",), image_size=8)
        self.backbone = type("Backbone", (), {"tokenizer": build_tiny_tokenizer()})()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def answer(self, batch, max_new_tokens: int = 32) -> list[str]:
        return [self.answers[p] for p in batch.vl_prompt]


def test_counts_and_table(tmp_path):
    region = square(8, 8, slice(0, 4), slice(0, 4))
    questions = [("point", ""), ("point", ""), ("spatial", "yes"), ("spatial", "no")]
    image = np.zeros((8, 8, 3), np.uint8)
    items = [
        GroundingItem(image, f"q{i}", kind, answer, region if kind == "point" else None)
        for i, (kind, answer) in enumerate(questions)
    ]
    model = Answerer({"q0": "(0.1, 0.1)", "q1": "(0.9, 0.9)", "q2": "yes", "q3": "yes"})
    counts = grounding_counts(model, items, batch_size=3)
    assert counts == {"point": (1, 2), "spatial": (1, 2)}
    table = grounding_table({"random init": {"point": (0, 2)}, "pretrained": counts})
    assert "| point in the named object's mask | 0.0 [0.0, 65.8] (n = 2) | 50.0 [9.5, 90.5] (n = 2) |" in (
        table
    )
    assert "| spatial-relation answer (left / right, closest) | n/a | 50.0 [9.5, 90.5] (n = 2) |" in (
        table
    )
    path = write_grounding_report({"pretrained": counts}, tmp_path / "g.md")
    assert "Wilson" in path.read_text()


def test_postprocess_maps_answers_before_scoring():
    region = square(8, 8, slice(0, 4), slice(0, 4))
    image = np.zeros((8, 8, 3), np.uint8)
    items = [GroundingItem(image, "q0", "point", "", region), GroundingItem(image, "q1", "point", "", region)]
    model = Answerer({"q0": "<a>", "q1": "<b>"})
    decoded = {"<a>": "(0.1, 0.1)", "<b>": "(0.9, 0.9)"}
    assert grounding_counts(model, items) == {"point": (0, 2)}
    assert grounding_counts(model, items, postprocess=decoded.__getitem__) == {"point": (1, 2)}


def test_items_are_held_out_and_carry_their_truth():
    items = grounding_items(10, image_size=48)
    assert len(items) == 10 and {it.kind for it in items} <= set(GROUNDING_KINDS)
    for it in items:
        assert it.image.shape == (48, 48, 3)
        if it.kind in ("point", "affordance", "free_space"):
            assert it.region.shape == (48, 48) and it.region.any()
            assert score_item(it, it.answer)  # the reference answer scores
        elif it.kind == "box":
            assert score_item(it, it.answer)
    again = grounding_items(10, image_size=48)
    assert [it.prompt for it in again] == [it.prompt for it in items]
    with pytest.raises(ValueError, match="subset"):
        grounding_items(3, kinds=("caption",))

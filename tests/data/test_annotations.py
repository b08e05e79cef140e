"""Annotation schema: exact round trip, prompts in the batch convention, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlaworks.data.annotations import (
    ANNOTATIONS_PATH,
    METADATA_KEY,
    EpisodeAnnotation,
    read_annotations,
    write_annotations,
)
from vlaworks.data.lerobot import DatasetError


def _mask() -> np.ndarray:
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2:4, 3:7] = 1
    return mask


def _valid(episode: int = 0) -> EpisodeAnnotation:
    return EpisodeAnnotation(
        episode_index=episode,
        valid=True,
        backend="oracle",
        camera="base",
        key_frame=17,
        phrase="leftmost red cube",
        mask=_mask(),
        confidence=0.75,
        proposal=(0.25, 0.125, 0.875, 0.75),
        box=(0.375, 0.3333333, 0.875, 0.6666667),
        line=((0.4375, 0.5), (0.8125, 0.5)),
        points=((0.5, 0.4166667), (0.6875, 0.5833333)),
    )


def _discarded(episode: int) -> EpisodeAnnotation:
    return EpisodeAnnotation(
        episode_index=episode,
        valid=False,
        backend="oracle",
        camera="base",
        key_frame=-1,
        phrase="bowl",
        mask=np.zeros((6, 8), dtype=np.uint8),
        reason="the gripper never closes",
    )


def test_round_trip_keeps_every_field(tmp_path):
    written = [_discarded(3), _valid(0)]
    path = write_annotations(tmp_path, written, settings={"margin": 0.1})
    assert path == tmp_path / ANNOTATIONS_PATH
    meta = json.loads(pq.read_schema(path).metadata[METADATA_KEY])
    assert meta == {"version": 1, "settings": {"margin": 0.1}}
    back = read_annotations(tmp_path)
    assert sorted(back) == [0, 3]
    a, b = back[0], _valid(0)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.mask.dtype == np.uint8
    for name in ("valid", "backend", "camera", "key_frame", "phrase", "reason", "episode_index"):
        assert getattr(a, name) == getattr(b, name)
    np.testing.assert_allclose(a.proposal, b.proposal, atol=1e-7)
    np.testing.assert_allclose(a.box, b.box, atol=1e-7)
    np.testing.assert_allclose(a.line, b.line, atol=1e-7)
    np.testing.assert_allclose(a.points, b.points, atol=1e-7)
    assert a.confidence == pytest.approx(0.75)
    d = back[3]
    assert not d.valid and d.reason == "the gripper never closes" and d.key_frame == -1
    assert d.box is None and d.line is None and d.points == () and d.proposal is None
    assert d.visual_prompts() == []


def test_visual_prompts_follow_the_batch_convention():
    a = _valid()
    prompts = a.visual_prompts(view=1)
    assert [p.kind for p in prompts] == ["point", "point", "line", "box", "mask"]
    assert all(p.view == 1 for p in prompts)
    assert prompts[0].coords == ((0.5, 0.4166667),)
    assert prompts[3].coords == ((0.375, 0.3333333), (0.875, 0.6666667))
    assert prompts[4].mask.dtype.is_floating_point is False and prompts[4].mask.sum().item() == 8
    assert [p.kind for p in a.visual_prompts(kinds=("box",))] == ["box"]
    with pytest.raises(ValueError, match="Unknown prompt kinds"):
        a.visual_prompts(kinds=("scribble",))
    np.testing.assert_array_equal(a.pixel_mask(), _mask().astype(bool))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": np.full((4, 4), 2, dtype=np.uint8)}, "uint8 \\[H, W\\] array of 0 / 1"),
        ({"mask": np.zeros((4, 4), dtype=np.int32)}, "uint8 \\[H, W\\]"),
        ({"box": (0.5, 0.2, 0.4, 0.3)}, "x0 <= x1"),
        ({"points": ((1.5, 0.2),)}, "in 0..1"),
        ({"confidence": 1.5}, "confidence"),
        ({"mask": np.zeros((6, 8), dtype=np.uint8)}, "mark it valid=False"),
        ({"valid": False}, "must say why"),
    ],
)
def test_bad_annotations_are_refused(change, message):
    fields = {k: getattr(_valid(), k) for k in EpisodeAnnotation.__dataclass_fields__}
    with pytest.raises(ValueError, match=message):
        EpisodeAnnotation(**(fields | change))


def test_missing_duplicate_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match="vlaworks annotate"):
        read_annotations(tmp_path)
    with pytest.raises(ValueError, match="repeat episode indexes \\[0\\]"):
        write_annotations(tmp_path, [_valid(0), _valid(0)])
    (tmp_path / "meta").mkdir()
    (tmp_path / ANNOTATIONS_PATH).write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="Could not parse"):
        read_annotations(tmp_path)

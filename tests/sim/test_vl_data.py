"""Vision-language samples: format, determinism and geometric correctness of answers."""

from __future__ import annotations

import re

import numpy as np

from vlaworks.sim.scene import Scene
from vlaworks.sim.vl_data import KINDS, _sample, _View, generate_vl_samples

POINT = re.compile(r"\((0\.\d\d|1\.00), (0\.\d\d|1\.00)\)")


def test_samples_have_the_documented_fields_and_are_deterministic():
    a = list(generate_vl_samples(12, seed=1, image_size=48))
    b = list(generate_vl_samples(12, seed=1, image_size=48))
    assert len(a) == 12
    for x, y in zip(a, b, strict=True):
        assert set(x) == {"image", "prompt", "answer", "kind"}
        assert x["image"].shape == (48, 48, 3) and x["image"].dtype == np.uint8
        assert x["kind"] in KINDS and x["prompt"] and x["answer"]
        assert x["prompt"] == y["prompt"] and x["answer"] == y["answer"]
        np.testing.assert_array_equal(x["image"], y["image"])
    assert [s["prompt"] for s in generate_vl_samples(12, seed=2, image_size=48)] != [s["prompt"] for s in a]


def test_point_box_and_grasp_answers_match_the_segmentation():
    scene = Scene(64)
    try:
        cube, cyl = scene.reset([("cube", "pink", -0.1, 0.05, 0.2), ("cylinder", "cyan", 0.12, 0.0, 0.0)])
        scene.refresh()
        image, _, seg = scene.render("base", segmentation=True)
        view = _View(scene, image, seg)
        assert {o.seg_id for o in view.visible} == {cube.seg_id, cyl.seg_id}
        for obj in (cube, cyl):
            for point in (view.center(obj), view.grasp_point(obj)):
                u, v = (point * 64).astype(int)
                assert seg[v, u] == obj.seg_id
            x0, y0, x1, y1 = view.box(obj)
            u, v = view.center(obj)
            assert x0 <= u <= x1 and y0 <= v <= y1
        prompt, answer = _sample("point", view, np.random.default_rng(0))
        assert POINT.fullmatch(answer) and prompt.startswith("Point to the ")
    finally:
        scene.close()

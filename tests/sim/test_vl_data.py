"""Vision-language samples: format, determinism, the category mix and geometric correctness of answers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vlaworks.sim.scene import Scene
from vlaworks.sim.vl_data import (
    CATEGORIES,
    CATEGORY_OF,
    KINDS,
    _View,
    format_mix,
    generate_vl_samples,
    parse_mix,
    sample_question,
)

POINT = re.compile(r"\((0\.\d\d|1\.00), (0\.\d\d|1\.00)\)")


def view_of(scene: Scene, placements: list[tuple[str, str, float, float, float]]) -> _View:
    """The base view of ``placements``; ``scene.active_objects()`` lists them in pool order."""
    scene.reset(placements)
    scene.refresh()
    image, _, seg = scene.render("base", segmentation=True)
    return _View(scene, image, seg)


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


def test_every_kind_has_one_category():
    assert sorted(KINDS) == sorted(k for kinds in CATEGORIES.values() for k in kinds)
    assert set(CATEGORY_OF.values()) == {"general", "grounding", "affordance", "reasoning"}


def test_mix_parsing():
    assert parse_mix("grounding=2, reasoning=0.5") == {
        "general": 0.0, "grounding": 2.0, "affordance": 0.0, "reasoning": 0.5
    }
    assert format_mix(parse_mix("general=1,grounding=1,affordance=1,reasoning=0")) == (
        "general=1,grounding=1,affordance=1,reasoning=0"
    )
    for bad, match in (("vision=1", "Bad mix entry"), ("grounding", "Bad mix entry"),
                       ("grounding=x", "must be a number"), ("general=0", "not all 0"),
                       ("general=-1,grounding=1", ">= 0")):
        with pytest.raises(ValueError, match=match):
            parse_mix(bad)


@pytest.mark.parametrize("dropped", ["grounding", "reasoning"])
def test_a_category_at_weight_zero_yields_none_of_its_kinds(dropped):
    mix = {c: 0.0 if c == dropped else 1.0 for c in CATEGORIES}
    kinds = {s["kind"] for s in generate_vl_samples(60, seed=3, image_size=32, mix=mix)}
    assert kinds and not kinds & set(CATEGORIES[dropped])
    only = {s["kind"] for s in generate_vl_samples(20, seed=3, image_size=32, mix={dropped: 1.0})}
    assert only <= set(CATEGORIES[dropped])


def test_mix_weights_set_the_category_shares():
    samples = list(generate_vl_samples(400, seed=4, image_size=32, mix={"general": 3.0, "affordance": 1.0}))
    share = np.mean([CATEGORY_OF[s["kind"]] == "general" for s in samples])
    assert 0.68 < share < 0.82  # 3 : 1 -> 0.75


def test_point_box_and_grasp_answers_match_the_segmentation():
    scene = Scene(64)
    try:
        view = view_of(scene, [("cube", "pink", -0.1, 0.05, 0.2), ("cylinder", "cyan", 0.12, 0.0, 0.0)])
        cube, cyl = scene.active_objects()
        assert {o.seg_id for o in view.visible} == {cube.seg_id, cyl.seg_id}
        for obj in (cube, cyl):
            for point in (view.center(obj), view.grasp_point(obj)):
                u, v = (point * 64).astype(int)
                assert view.seg[v, u] == obj.seg_id
            x0, y0, x1, y1 = view.box(obj)
            u, v = view.center(obj)
            assert x0 <= u <= x1 and y0 <= v <= y1
        q = sample_question("point", view, np.random.default_rng(0))
        assert POINT.fullmatch(q.answer) and q.prompt.startswith("Point to the ")
    finally:
        scene.close()


def test_free_space_answers_are_free_table_on_the_named_side():
    scene = Scene(64)
    try:
        view = view_of(scene, [("cube", "red", 0.0, 0.0, 0.0), ("cylinder", "blue", 0.15, 0.1, 0.0)])
        free = view.free_table()
        assert free.any() and not (free & (view.seg != 0)).any()
        for seed in range(8):
            q = sample_question("free_space", view, np.random.default_rng(seed))
            ref = next(o for o in view.visible if q.prompt.endswith(f"the {o.label}."))
            u, v = (np.array([float(x) for x in POINT.fullmatch(q.answer).groups()]) * 64).astype(int)
            assert q.region[v, u] and free[v, u]
            x0, y0, x1, y1 = view.box(ref) * 64
            side = {"left of": u < x0, "right of": u >= x1, "front of": v >= y1, "behind": v < y0}
            assert next(ok for words, ok in side.items() if words in q.prompt)
    finally:
        scene.close()


def test_reasoning_answers_follow_the_scene():
    scene = Scene(64)
    try:
        # a cube, a cylinder on the straight line from it to the plate, and a bowl off that line
        line = [("cube", "red", -0.16, 0.0, 0.0), ("cylinder", "green", 0.0, 0.005, 0.0),
                ("plate", "", 0.17, 0.0, 0.0), ("bowl", "", 0.0, 0.17, 0.0)]
        view = view_of(scene, line)
        cube, cyl, bowl, plate = scene.active_objects()
        assert view.blockers(cube, plate) == [cyl]
        assert view.blockers(cube, bowl) == [] and view.blockers(cyl, plate) == []
        answers = {}
        for seed in range(40):
            for kind in ("blocking", "first_move"):
                q = sample_question(kind, view, np.random.default_rng(seed))
                answers[q.prompt] = q.answer
        path = "from the red cube to the plate"
        assert answers[f"What blocks the path {path}?"] == "the green cylinder"
        assert answers["To carry the red cube straight to the plate, what must the robot move first?"] == (
            "the green cylinder"
        )
        assert answers["What blocks the path from the red cube to the bowl?"] == "nothing"
        assert answers["To carry the red cube straight to the bowl, what must the robot move first?"] == (
            "the red cube"
        )
        plan = sample_question("plan", view, np.random.default_rng(1))
        a, b = re.fullmatch(r"How can the robot put the (.+) next to the (.+)\?", plan.prompt).groups()
        movable = {o.label: o for o in (cube, cyl)}
        target = {o.label: o for o in (cube, cyl, plate, bowl)}[b]
        points = [float(x) for x in re.findall(r"\d\.\d\d", plan.answer)]
        np.testing.assert_allclose(points[:2], view.grasp_point(movable[a]), atol=0.005)
        np.testing.assert_allclose(points[2:], view.center(target), atol=0.005)
    finally:
        scene.close()


def test_general_answers_follow_the_scene():
    scene = Scene(64)
    try:
        view = view_of(scene, [("cube", "red", -0.1, 0.0, 0.0), ("cube", "blue", 0.1, 0.0, 0.0),
                               ("cylinder", "green", 0.0, 0.1, 0.0)])
        seen = {}
        for seed in range(30):
            for kind in ("count", "exists", "caption"):
                q = sample_question(kind, view, np.random.default_rng(seed))
                seen[q.prompt] = q.answer
        assert seen["How many cubes are on the table?"] == "2"
        assert seen["How many cylinders are on the table?"] == "1"
        caption = "From left to right: a red cube, a green cylinder and a blue cube."
        assert seen["Describe the scene."] == caption
        for prompt, answer in seen.items():
            if prompt.startswith("Is there a "):
                label = prompt.removeprefix("Is there a ").removesuffix(" on the table?")
                assert answer == ("yes" if label in {"red cube", "blue cube", "green cylinder"} else "no")
        assert {a for p, a in seen.items() if p.startswith("Is there")} == {"yes", "no"}
    finally:
        scene.close()

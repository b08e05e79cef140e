"""Vision-language samples from tabletop scenes, for VLM pretraining and co-training.

Scenes are drawn from a *wider* appearance distribution than the robot demos: all
colours (including ones no robot task uses), any table / floor texture and tint, random
lighting and a jittered base camera. Each sample is the base-camera image plus a prompt
and a text answer, of one of these kinds:

* ``caption``: the objects, left to right;
* ``point``: "point to the red cube" -> ``(x, y)`` normalised image coordinates (2 decimals);
* ``box``: the visible bounding box ``[x0, y0, x1, y1]`` from the segmentation;
* ``spatial``: left/right and nearest-to questions answered from the image geometry;
* ``affordance``: where to grasp an object (top centre of a cube / cylinder, front rim of a
  bowl or plate);
* ``count``: how many cubes / cylinders;
* ``plan``: a two-step pick-and-place plan with the points to act on.

Coordinates: x to the right, y down, both in [0, 1] (the batch contract's convention).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vlaworks.miniature import VL_SCENE_STREAM
from vlaworks.sim import perturb
from vlaworks.sim.scene import (
    ALL_COLORS,
    BOWL_RADIUS,
    PLATE_HALF_H,
    PLATE_RADIUS,
    POOL,
    REST_Z,
    Scene,
    SceneObject,
)
from vlaworks.sim.tasks import sample_positions

KINDS = ("caption", "point", "box", "spatial", "affordance", "count", "plan")
MIN_VISIBLE_PIXELS = 6


def _fmt_point(p: np.ndarray) -> str:
    return f"({p[0]:.2f}, {p[1]:.2f})"


class _View:
    """Projection and visibility of the current scene in the base camera."""

    def __init__(self, scene: Scene, image: np.ndarray, seg: np.ndarray) -> None:
        self.scene, self.image, self.seg = scene, image, seg
        self.size = image.shape[0]
        k, world_from_cam = scene.camera_matrices("base")
        self.k, self.cam_from_world = k, np.linalg.inv(world_from_cam)
        self.visible = [
            o for o in scene.active_objects() if int((seg == o.seg_id).sum()) >= MIN_VISIBLE_PIXELS
        ]

    def project(self, point: np.ndarray) -> np.ndarray:
        """Normalised image coordinates of a world point."""
        p = self.cam_from_world @ np.append(point, 1.0)
        uv = (self.k @ (p[:3] / p[2]))[:2]
        return np.clip(uv / self.size, 0.0, 1.0)

    def center(self, obj: SceneObject) -> np.ndarray:
        return self.project(self.scene.pos(obj))

    def box(self, obj: SceneObject) -> np.ndarray:
        ys, xs = np.nonzero(self.seg == obj.seg_id)
        return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / self.size

    def grasp_point(self, obj: SceneObject) -> np.ndarray:
        p = self.scene.pos(obj)
        if obj.kind == "bowl":
            return self.project(p + np.array([0.0, -BOWL_RADIUS, 0.04]))  # front rim
        if obj.kind == "plate":
            return self.project(p + np.array([0.0, -PLATE_RADIUS, PLATE_HALF_H]))  # front edge
        return self.project(p + np.array([0.0, 0.0, REST_Z[obj.kind]]))


def _list(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _sample(kind: str, view: _View, rng: np.random.Generator) -> tuple[str, str] | None:
    """(prompt, answer) of ``kind`` for the scene, or None if the scene cannot support it."""
    objs = view.visible
    if not objs:
        return None
    pick = objs[int(rng.integers(len(objs)))]
    if kind == "caption":
        ordered = sorted(objs, key=lambda o: view.center(o)[0])
        return "Describe the scene.", "From left to right: " + _list([f"a {o.label}" for o in ordered]) + "."
    if kind == "point":
        return f"Point to the {pick.label}.", _fmt_point(view.center(pick))
    if kind == "box":
        b = view.box(pick)
        return (
            f"Give the bounding box of the {pick.label}.",
            f"[{b[0]:.2f}, {b[1]:.2f}, {b[2]:.2f}, {b[3]:.2f}]",
        )
    if kind == "affordance":
        return f"Where should the gripper grasp the {pick.label}?", _fmt_point(view.grasp_point(pick))
    if kind == "count":
        what = str(rng.choice(["cube", "cylinder"]))
        n = sum(1 for o in view.scene.active_objects() if o.kind == what)
        return f"How many {what}s are on the table?", str(n)
    if len(objs) < 2:
        return None
    other = objs[int(rng.integers(len(objs)))]
    while other is pick:
        other = objs[int(rng.integers(len(objs)))]
    if kind == "spatial":
        dx = view.center(pick)[0] - view.center(other)[0]
        if rng.random() < 0.5 and abs(dx) > 0.03:
            side = str(rng.choice(["left", "right"]))
            truth = (dx < 0) == (side == "left")
            return f"Is the {pick.label} to the {side} of the {other.label}?", "yes" if truth else "no"
        rest = [o for o in objs if o is not pick]
        dists = [np.linalg.norm(view.scene.pos(o)[:2] - view.scene.pos(pick)[:2]) for o in rest]
        return f"Which object is closest to the {pick.label}?", f"the {rest[int(np.argmin(dists))].label}"
    if kind == "plan":
        if pick.kind not in ("cube", "cylinder"):
            return None
        prompt = f"How can the robot put the {pick.label} next to the {other.label}?"
        answer = (
            f"First grasp the {pick.label} at {_fmt_point(view.grasp_point(pick))}, then carry it to the "
            f"{other.label} at {_fmt_point(view.center(other))} and release it beside it."
        )
        return prompt, answer
    raise ValueError(f"unknown VL sample kind {kind!r}; choose from {KINDS}")


def _random_scene(scene: Scene, rng: np.random.Generator) -> None:
    """Lay out 2-6 objects with unique (kind, colour) and randomise appearance widely."""
    n_small = int(rng.integers(2, 6))
    objects: list[tuple[str, str]] = []
    while len(objects) < n_small:
        cand = (str(rng.choice(["cube", "cylinder"])), str(rng.choice(list(ALL_COLORS))))
        if cand not in objects and sum(1 for k, _ in objects if k == cand[0]) < POOL[cand[0]]:
            objects.append(cand)
    for container in ("bowl", "plate"):
        if rng.random() < 0.5:
            objects.append((container, ""))
    order = rng.permutation(len(objects))
    objects = [objects[i] for i in order]
    xy = sample_positions([k for k, _ in objects], rng, margin=0.02)
    while xy is None:
        objects = objects[:-1]
        xy = sample_positions([k for k, _ in objects], rng, margin=0.02)
    placements = [
        (k, c, x, y, float(rng.uniform(-np.pi, np.pi))) for (k, c), (x, y) in zip(objects, xy, strict=True)
    ]
    ee = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.15, 0.05), rng.uniform(0.18, 0.3)])
    scene.restore_defaults()
    scene.reset(placements, ee_pos=ee)
    # v1: these samples predate the LIBERO-Plus calibration of the perturbations and stay as they were
    perturb.apply_camera(scene, float(rng.uniform(0.0, 0.6)), rng, "v1")
    perturb.apply_lighting(scene, float(rng.uniform(0.0, 1.0)), rng, "v1")
    if rng.random() < 0.7:
        perturb.apply_background(scene, float(rng.uniform(0.0, 1.0)), rng)
    scene.refresh()


def generate_vl_samples(
    n: int, seed: int, image_size: int = 128, samples_per_scene: int = 4
) -> Iterator[dict]:
    """Yield ``n`` samples ``{"image": uint8[H, W, 3], "prompt": str, "answer": str, "kind": str}``.

    Deterministic in ``seed``; several samples (of different kinds) share one scene to
    amortise rendering.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, VL_SCENE_STREAM])
    scene = Scene(image_size)
    try:
        produced = 0
        while produced < n:
            _random_scene(scene, rng)
            image, _, seg = scene.render("base", segmentation=True)
            view = _View(scene, image, seg)
            for kind in rng.permutation(KINDS)[:samples_per_scene]:
                qa = _sample(str(kind), view, rng)
                if qa is None:
                    continue
                yield {"image": image.copy(), "prompt": qa[0], "answer": qa[1], "kind": str(kind)}
                produced += 1
                if produced == n:
                    return
    finally:
        scene.close()

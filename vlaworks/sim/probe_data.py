"""Labelled objects in random tabletop scenes: the samples of the linear probes (seed 004, Fig. 4).

Random scenes (2-4 cubes / cylinders in any of the twelve colours, optionally a bowl and a
plate, random gripper pose, lighting and table / floor texture) are rendered from the base
camera with ground-truth segmentation. Every visible object (at least
:data:`MIN_OBJECT_PIXELS` pixels) becomes one :class:`ProbeSample`: the *whole* scene image,
the object's mask and its labels. :mod:`vlaworks.eval.probes` turns them into features and
probe accuracies.

Scenes come from their own seed stream (:data:`vlaworks.miniature.PROBE_SCENE_STREAM`), so
they never coincide with the vision-language scenes a model pretrained or co-trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlaworks.miniature import PROBE_SCENE_STREAM
from vlaworks.sim import perturb
from vlaworks.sim.scene import ALL_COLORS, POOL, Scene
from vlaworks.sim.tasks import sample_positions

#: object kinds of the probe scenes (cubes and cylinders carry a colour, containers none)
KINDS = ("cube", "cylinder", "bowl", "plate")
MIN_OBJECT_PIXELS = 12


@dataclass(frozen=True)
class ProbeSample:
    """One object in one rendered scene: the scene ``image`` (uint8 ``[H, W, 3]``), the
    object's ``mask`` (bool ``[H, W]``), its ``kind`` and ``color`` (``""`` for containers)."""

    image: np.ndarray
    mask: np.ndarray
    kind: str
    color: str


def _layout(rng: np.random.Generator) -> list[tuple[str, str]]:
    colors = list(ALL_COLORS)
    objects: list[tuple[str, str]] = []
    target = int(rng.integers(2, 5))
    while len(objects) < target:
        cand = (str(rng.choice(["cube", "cylinder"])), colors[int(rng.integers(len(colors)))])
        if cand not in objects and sum(1 for k, _ in objects if k == cand[0]) < POOL[cand[0]]:
            objects.append(cand)
    objects += [(c, "") for c in ("bowl", "plate") if rng.random() < 0.5]
    return [objects[i] for i in rng.permutation(len(objects))]


def probe_samples(n: int, seed: int, image_size: int = 128) -> list[ProbeSample]:
    """``n`` probe samples from random tabletop scenes (see the module docstring).

    Deterministic in ``seed``; all visible objects of a scene are used, in scene order.
    """
    if n < 1:
        raise ValueError(f"probe_samples needs n >= 1; got {n}.")
    rng = np.random.default_rng([seed, PROBE_SCENE_STREAM])
    scene = Scene(image_size)
    out: list[ProbeSample] = []
    try:
        while len(out) < n:
            objects = _layout(rng)
            xy = sample_positions([k for k, _ in objects], rng, margin=0.02)
            while xy is None:
                objects = objects[:-1]
                xy = sample_positions([k for k, _ in objects], rng, margin=0.02)
            yaws = rng.uniform(-np.pi, np.pi, len(objects))
            placements = [(k, c, x, y, float(a)) for (k, c), (x, y), a in zip(objects, xy, yaws, strict=True)]
            ee = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.15, 0.05), rng.uniform(0.18, 0.3)])
            scene.restore_defaults()
            active = scene.reset(placements, ee_pos=ee)
            # v1: these scenes predate the LIBERO-Plus calibration of the perturbations
            perturb.apply_lighting(scene, float(rng.uniform(0.0, 0.5)), rng, "v1")
            if rng.random() < 0.5:
                perturb.apply_background(scene, float(rng.uniform(0.0, 1.0)), rng)
            scene.refresh()
            image, _, seg = scene.render("base", segmentation=True)
            for obj in active:
                mask = seg == obj.seg_id
                if int(mask.sum()) >= MIN_OBJECT_PIXELS and len(out) < n:
                    out.append(ProbeSample(image.copy(), mask, obj.kind, obj.color))
    finally:
        scene.close()
    return out

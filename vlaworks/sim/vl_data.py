"""Vision-language samples from tabletop scenes, for VLM pretraining and co-training.

Scenes are drawn from a *wider* appearance distribution than the robot demos: all
colours (including ones no robot task uses), any table / floor texture and tint, random
lighting and a jittered base camera. Each sample is the base-camera image plus a prompt
and a text answer. The kinds fall into PokeVLM's four pretraining categories (seed 001,
§IV-A, Table I), whose mix is configurable (:func:`parse_mix`; Table VII drops one):

* **general** (LLaVA-style understanding): ``caption`` (the objects, left to right),
  ``count`` (how many cubes / cylinders are visible), ``exists`` (is there a blue cube? yes / no);
* **grounding** (RoboPoint / RefSpatial / RoboRefit): ``point`` ("point to the red cube" ->
  ``(x, y)``, the object's projected centre), ``box`` (the visible bounding box
  ``[x0, y0, x1, y1]`` from the segmentation), ``spatial`` (is A left / right of B: yes / no;
  which object is closest to A, asked only where the nearest is clearly nearest) and
  ``free_space`` (Where2Place: a free table spot to the left of / to the right of / in front of /
  behind an object; see :func:`relation_region`);
* **affordance** (HOVA-style grasp points): ``affordance``, where to grasp an object, from
  the world geometry (top centre of a cube / cylinder, front rim of a bowl or plate);
* **embodied reasoning** (short chains): ``blocking`` (what lies on the straight path from
  A to B: "the C" or "nothing"), ``first_move`` (to carry A to B, which object must move
  first: the first blocker, else A itself) and ``plan`` (grasp point, then place point).

Coordinates: x to the right, y down, both in [0, 1] (the batch contract's convention),
written with two decimals, ``(0.45, 0.52)``.

With ``truth=True`` a sample also carries what a grounding benchmark scores against
(:mod:`vlaworks.eval.grounding`): ``region`` (bool ``[H, W]``: the pixels a correct point
may hit: the named object's mask for ``point`` / ``affordance``, free table inside the
relation's region for ``free_space``) and ``box`` (the true box of a ``box`` question).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from vlaworks.miniature import VL_SCENE_STREAM
from vlaworks.sim import perturb
from vlaworks.sim.scene import (
    ALL_COLORS,
    BOWL_RADIUS,
    FOOTPRINT,
    GRASPABLE,
    PLATE_HALF_H,
    PLATE_RADIUS,
    POOL,
    REST_Z,
    SEG_BACKGROUND,
    TABLE_HALF,
    Scene,
    SceneObject,
)
from vlaworks.sim.tasks import sample_positions

#: PokeVLM's pretraining categories (seed 001, Table I) and the sample kinds of each
CATEGORIES: dict[str, tuple[str, ...]] = {
    "general": ("caption", "count", "exists"),
    "grounding": ("point", "box", "spatial", "free_space"),
    "affordance": ("affordance",),
    "reasoning": ("blocking", "first_move", "plan"),
}
KINDS = tuple(kind for kinds in CATEGORIES.values() for kind in kinds)
CATEGORY_OF = {kind: category for category, kinds in CATEGORIES.items() for kind in kinds}
#: every category equally often (the paper balances its tasks by sampling)
DEFAULT_MIX: dict[str, float] = dict.fromkeys(CATEGORIES, 1.0)
#: bumped whenever a sample's content changes (keys the pretrained-VLM cache)
VL_DATA_VERSION = 2
MIN_VISIBLE_PIXELS = 6
#: consecutive scenes without a visible object after which the image size is too small
MAX_BARREN_SCENES = 20
#: left / right questions only when the centres differ by more than this (normalised x)
MIN_SIDE_GAP = 0.04
#: "closest" questions only when the nearest object is nearer than this share of the second
CLOSEST_MARGIN = 0.75
#: free-space regions: how far past the reference box (``REACH``) and how far off its
#: centre line (``BAND``) a spot may lie, in normalised image units
REACH, BAND = 0.2, 0.1
RELATIONS = ("to the left of", "to the right of", "in front of", "behind")
#: an object blocks the path A -> B when its footprint comes within this of the segment (m)
PATH_HALF_WIDTH = 0.03


def parse_mix(text: str) -> dict[str, float]:
    """``"general=1,grounding=2,affordance=1,reasoning=0"`` -> weights per category.

    Categories left out keep weight 0; weight 0 drops a category (Table VII's ablation).
    """
    mix = dict.fromkeys(CATEGORIES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in CATEGORIES:
            raise ValueError(
                f"Bad mix entry {part!r}; write CATEGORY=WEIGHT with CATEGORY one of {', '.join(CATEGORIES)}."
            )
        try:
            mix[name] = float(value)
        except ValueError:
            raise ValueError(f"Mix weight of {name!r} must be a number; got {value!r}.") from None
    return check_mix(mix)


def check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """The mix with every category present (missing ones at 0), validated: known names,
    weights >= 0, at least one positive."""
    unknown = sorted(set(mix) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"Unknown VL categories {unknown}; choose from {', '.join(CATEGORIES)}.")
    full = {c: float(mix.get(c, 0.0)) for c in CATEGORIES}
    if any(w < 0 or not np.isfinite(w) for w in full.values()) or sum(full.values()) <= 0:
        raise ValueError(f"Mix weights must be finite, >= 0 and not all 0; got {full}.")
    return full


def format_mix(mix: Mapping[str, float]) -> str:
    """The inverse of :func:`parse_mix`: ``"general=1,grounding=1,..."`` (every category)."""
    return ",".join(f"{c}={w:g}" for c, w in check_mix(mix).items())


def fmt_point(p: np.ndarray) -> str:
    """``(x, y)`` with two decimals."""
    return f"({p[0]:.2f}, {p[1]:.2f})"


def pixel_centres(size: int) -> np.ndarray:
    """Normalised coordinates of the ``size`` pixel centres along one image axis."""
    return (np.arange(size) + 0.5) / size


def relation_region(shape: tuple[int, int], box: np.ndarray, relation: str) -> np.ndarray:
    """Pixels (bool ``[H, W]``) whose centres lie ``relation`` the object with normalised box
    ``[x0, y0, x1, y1]``: past the box's side by at most :data:`REACH` and within :data:`BAND`
    of its centre line. "in front of" is towards the camera (down in the image), "behind"
    away from it."""
    v, u = pixel_centres(shape[0])[:, None], pixel_centres(shape[1])[None, :]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if relation == "to the left of":
        return (u < x0) & (u >= x0 - REACH) & (np.abs(v - cy) <= BAND)
    if relation == "to the right of":
        return (u > x1) & (u <= x1 + REACH) & (np.abs(v - cy) <= BAND)
    if relation == "in front of":
        return (v > y1) & (v <= y1 + REACH) & (np.abs(u - cx) <= BAND)
    if relation == "behind":
        return (v < y0) & (v >= y0 - REACH) & (np.abs(u - cx) <= BAND)
    raise ValueError(f"Unknown relation {relation!r}; choose from {RELATIONS}.")


def _anchor(box: np.ndarray, relation: str) -> np.ndarray:
    """The spot a free-space answer aims for: half the reach past the box, on its centre line."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    step = REACH / 2
    return {
        "to the left of": np.array([x0 - step, cy]),
        "to the right of": np.array([x1 + step, cy]),
        "in front of": np.array([cx, y1 + step]),
        "behind": np.array([cx, y0 - step]),
    }[relation]


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood is all inside ``mask`` (image border counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    h, w = mask.shape
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= padded[dy : dy + h, dx : dx + w]
    return out


@dataclass
class Question:
    """One question about a scene: prompt, reference answer and, for scored-by-geometry
    kinds, the region a correct point may hit or the true box."""

    prompt: str
    answer: str
    region: np.ndarray | None = None
    box: np.ndarray | None = None


class _View:
    """Projection, visibility and masks of the current scene in the base camera."""

    def __init__(self, scene: Scene, image: np.ndarray, seg: np.ndarray) -> None:
        self.scene, self.image, self.seg = scene, image, seg
        self.size = image.shape[0]
        k, world_from_cam = scene.camera_matrices("base")
        self.k, self.world_from_cam = k, world_from_cam
        self.cam_from_world = np.linalg.inv(world_from_cam)
        self.visible = [
            o for o in scene.active_objects() if int((seg == o.seg_id).sum()) >= MIN_VISIBLE_PIXELS
        ]
        self._free: np.ndarray | None = None

    def project(self, point: np.ndarray) -> np.ndarray:
        """Normalised image coordinates of a world point."""
        p = self.cam_from_world @ np.append(point, 1.0)
        uv = (self.k @ (p[:3] / p[2]))[:2]
        return np.clip(uv / self.size, 0.0, 1.0)

    def center(self, obj: SceneObject) -> np.ndarray:
        return self.project(self.scene.pos(obj))

    def xy(self, obj: SceneObject) -> np.ndarray:
        return self.scene.pos(obj)[:2]

    def mask(self, obj: SceneObject) -> np.ndarray:
        return self.seg == obj.seg_id

    def box(self, obj: SceneObject) -> np.ndarray:
        ys, xs = np.nonzero(self.mask(obj))
        return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / self.size

    def free_table(self) -> np.ndarray:
        """Pixels showing the table top itself: background in the segmentation (no object,
        no gripper) whose camera ray meets the plane ``z = 0`` inside the table."""
        if self._free is None:
            c = pixel_centres(self.size) * self.size
            u, v = np.meshgrid(c, c)
            rays_cam = np.linalg.inv(self.k) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
            rays = self.world_from_cam[:3, :3] @ rays_cam
            origin = self.world_from_cam[:3, 3]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = -origin[2] / rays[2]
            hit = origin[:2, None] + t * rays[:2]
            inside = (t > 0) & (np.abs(hit[0]) <= TABLE_HALF[0]) & (np.abs(hit[1]) <= TABLE_HALF[1])
            self._free = inside.reshape(self.seg.shape) & (self.seg == SEG_BACKGROUND)
        return self._free

    def grasp_point(self, obj: SceneObject) -> np.ndarray:
        p = self.scene.pos(obj)
        if obj.kind == "bowl":
            return self.project(p + np.array([0.0, -BOWL_RADIUS, 0.04]))  # front rim
        if obj.kind == "plate":
            return self.project(p + np.array([0.0, -PLATE_RADIUS, PLATE_HALF_H]))  # front edge
        return self.project(p + np.array([0.0, 0.0, REST_Z[obj.kind]]))

    def blockers(self, a: SceneObject, b: SceneObject) -> list[SceneObject]:
        """Visible objects whose footprint comes within :data:`PATH_HALF_WIDTH` of the straight
        table path from ``a`` to ``b`` (between them, clear of both ends), nearest ``a`` first."""
        pa, pb = self.xy(a), self.xy(b)
        d = pb - pa
        length = float(np.linalg.norm(d))
        found = []
        for c in self.visible:
            if c is a or c is b:
                continue
            pc = self.xy(c)
            t = float(np.dot(pc - pa, d) / length**2)
            off = float(np.linalg.norm(pa + np.clip(t, 0.0, 1.0) * d - pc))
            ends = min(np.linalg.norm(pc - pa), np.linalg.norm(pc - pb))
            if 0.0 < t < 1.0 and off < FOOTPRINT[c.kind] + PATH_HALF_WIDTH and ends > FOOTPRINT[c.kind]:
                found.append((t, c))
        return [c for _, c in sorted(found, key=lambda x: x[0])]


def _list(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _pick(objs: list[SceneObject], rng: np.random.Generator) -> SceneObject:
    return objs[int(rng.integers(len(objs)))]


def _general(kind: str, view: _View, rng: np.random.Generator) -> Question | None:
    objs = view.visible
    if kind == "caption":
        ordered = [f"a {o.label}" for o in sorted(objs, key=lambda o: view.center(o)[0])]
        return Question("Describe the scene.", f"From left to right: {_list(ordered)}.")
    if kind == "count":
        what = str(rng.choice(GRASPABLE))
        n = sum(1 for o in objs if o.kind == what)
        return Question(f"How many {what}s are on the table?", str(n))
    # exists: half the questions name a visible object, half an absent (kind, colour)
    present = {o.label for o in view.scene.active_objects()}
    if rng.random() < 0.5:
        return Question(f"Is there a {_pick(objs, rng).label} on the table?", "yes")
    absent = [f"{c} {k}" for k in GRASPABLE for c in ALL_COLORS if f"{c} {k}" not in present]
    return Question(f"Is there a {absent[int(rng.integers(len(absent)))]} on the table?", "no")


def _spatial(view: _View, rng: np.random.Generator) -> Question | None:
    objs = view.visible
    pick = _pick(objs, rng)
    rest = [o for o in objs if o is not pick]
    other = _pick(rest, rng)
    dx = view.center(pick)[0] - view.center(other)[0]
    if rng.random() < 0.5 and abs(dx) > MIN_SIDE_GAP:
        side = str(rng.choice(["left", "right"]))
        truth = (dx < 0) == (side == "left")
        return Question(f"Is the {pick.label} to the {side} of the {other.label}?", "yes" if truth else "no")
    dists = np.array([np.linalg.norm(view.xy(o) - view.xy(pick)) for o in rest])
    order = np.argsort(dists)
    if len(rest) > 1 and dists[order[0]] > CLOSEST_MARGIN * dists[order[1]]:
        return None  # no clear answer
    return Question(f"Which object is closest to the {pick.label}?", f"the {rest[int(order[0])].label}")


def _free_space(view: _View, rng: np.random.Generator) -> Question | None:
    ref = _pick(view.visible, rng)
    relation = str(rng.choice(RELATIONS))
    box = view.box(ref)
    free = view.free_table()
    region = free & relation_region(free.shape, box, relation)
    targets = _erode(free) & region
    if not targets.any():
        return None
    ys, xs = np.nonzero(targets)
    pts = np.stack([xs, ys], axis=1) / view.size + 0.5 / view.size
    best = pts[int(np.argmin(np.linalg.norm(pts - _anchor(box, relation), axis=1)))]
    return Question(f"Point to a free spot {relation} the {ref.label}.", fmt_point(best), region=region)


def _reasoning(kind: str, view: _View, rng: np.random.Generator) -> Question | None:
    movable = [o for o in view.visible if o.kind in GRASPABLE]
    if not movable:
        return None
    if kind == "plan":
        a = _pick(movable, rng)
        b = _pick([o for o in view.visible if o is not a], rng)
        return Question(
            f"How can the robot put the {a.label} next to the {b.label}?",
            f"Grasp the {a.label} at {fmt_point(view.grasp_point(a))}, then release it by the "
            f"{b.label} at {fmt_point(view.center(b))}.",
        )
    # blocking / first_move: half the questions about a blocked path when the scene has one
    pairs = [(a, b) for a in movable for b in view.visible if b is not a]
    blocked = [(a, b) for a, b in pairs if view.blockers(a, b)]
    pool = blocked if blocked and rng.random() < 0.5 else pairs
    a, b = pool[int(rng.integers(len(pool)))]
    first = next(iter(view.blockers(a, b)), None)
    if kind == "blocking":
        return Question(f"What blocks the path from the {a.label} to the {b.label}?",
                        f"the {first.label}" if first else "nothing")
    return Question(f"To carry the {a.label} straight to the {b.label}, what must the robot move first?",
                    f"the {(first or a).label}")


def sample_question(kind: str, view: _View, rng: np.random.Generator) -> Question | None:
    """A question of ``kind`` about the scene, or None if the scene cannot support it."""
    objs = view.visible
    if not objs:
        return None
    if kind not in KINDS:
        raise ValueError(f"unknown VL sample kind {kind!r}; choose from {KINDS}")
    category = CATEGORY_OF[kind]
    if category == "general":
        return _general(kind, view, rng)
    if category == "affordance" or kind in ("point", "box"):
        pick = _pick(objs, rng)
        if kind == "point":
            return Question(
                f"Point to the {pick.label}.", fmt_point(view.center(pick)), region=view.mask(pick)
            )
        if kind == "affordance":
            return Question(f"Where should the gripper grasp the {pick.label}?",
                            fmt_point(view.grasp_point(pick)), region=view.mask(pick))
        b = view.box(pick)
        return Question(f"Give the bounding box of the {pick.label}.",
                        f"[{b[0]:.2f}, {b[1]:.2f}, {b[2]:.2f}, {b[3]:.2f}]", box=b)
    if kind == "free_space":
        return _free_space(view, rng)
    if len(objs) < 2:
        return None
    if kind == "spatial":
        return _spatial(view, rng)
    return _reasoning(kind, view, rng)


def _random_scene(scene: Scene, rng: np.random.Generator) -> None:
    """Lay out 2-6 objects with unique (kind, colour) and randomise appearance widely."""
    n_small = int(rng.integers(2, 6))
    objects: list[tuple[str, str]] = []
    while len(objects) < n_small:
        cand = (str(rng.choice(GRASPABLE)), str(rng.choice(list(ALL_COLORS))))
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
    n: int,
    seed: int,
    image_size: int = 128,
    samples_per_scene: int = 4,
    *,
    mix: Mapping[str, float] | None = None,
    kinds: tuple[str, ...] | None = None,
    stream: int = VL_SCENE_STREAM,
    truth: bool = False,
) -> Iterator[dict]:
    """Yield ``n`` samples ``{"image": uint8[H, W, 3], "prompt": str, "answer": str, "kind": str}``.

    Each sample's category is drawn by the ``mix`` weights (default :data:`DEFAULT_MIX`),
    then its kind uniformly within the category; ``kinds`` instead draws uniformly from
    those kinds. Deterministic in ``(seed, stream)``; ``samples_per_scene`` samples share one
    scene to amortise rendering. ``truth`` adds ``"region"`` / ``"box"`` (module docstring).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if kinds is not None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {kinds}.")
        choices, weights = list(kinds), np.full(len(kinds), 1.0 / len(kinds))
    else:
        full = check_mix(DEFAULT_MIX if mix is None else mix)
        total = sum(full.values())
        choices = list(KINDS)
        weights = np.array([full[CATEGORY_OF[k]] / total / len(CATEGORIES[CATEGORY_OF[k]]) for k in KINDS])
    rng = np.random.default_rng([seed, stream])
    scene = Scene(image_size)
    try:
        produced, barren = 0, 0
        while produced < n:
            _random_scene(scene, rng)
            image, _, seg = scene.render("base", segmentation=True)
            view = _View(scene, image, seg)
            barren = barren + 1 if not view.visible else 0
            if barren == MAX_BARREN_SCENES:
                raise ValueError(
                    f"No object covers {MIN_VISIBLE_PIXELS} pixels in {barren} scenes at image_size "
                    f"{image_size}; render them larger."
                )
            for kind in rng.choice(choices, size=samples_per_scene, p=weights):
                q = sample_question(str(kind), view, rng)
                if q is None:
                    continue
                sample = {"image": image.copy(), "prompt": q.prompt, "answer": q.answer, "kind": str(kind)}
                if truth:
                    sample |= {"region": q.region, "box": q.box}
                yield sample
                produced += 1
                if produced == n:
                    return
    finally:
        scene.close()

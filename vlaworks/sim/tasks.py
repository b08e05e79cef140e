"""Task suites (spatial / object / goal / long / ambiguous): layouts, instructions, success predicates.

A task is a list of :class:`Goal` s over objects named by :class:`ObjRef` (kind, colour,
and for the spatial suite a position word such as "leftmost"). Each episode samples a
layout, resolves every reference to a concrete pooled object, and renders an instruction
from a training template. Success is checked on the true simulator state.

The ``ambiguous`` suite (PixelVLA's prompting, seed 000) places two identical objects and
names the target deictically ("the red cube that I am pointing at"): language alone cannot tell
them apart, only a visual prompt can (``vlaworks.prompts``). The target is the first of the
two placed; with ``layout="random"`` both are placed alike, and with ``layout="fixed"`` the
twins swap their two canonical places on a coin flip per episode, so nothing in the image or
the instruction says which: a policy without the prompt succeeds at most half the time.

Coordinates follow :mod:`vlaworks.sim.scene`: image-right is ``+x``, "front" (nearest
the camera) is ``-y``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from vlaworks.sim.scene import (
    BOWL_RADIUS,
    FOOTPRINT,
    PLATE_HALF_H,
    PLATE_RADIUS,
    POOL,
    REST_Z,
    TASK_COLORS,
    Scene,
    SceneObject,
)

SUITES = ("spatial", "object", "goal", "long", "ambiguous")
PLACE_REGION = ((-0.28, 0.28), (-0.19, 0.2))  # x, y ranges for object centres (see in_view)
LAYOUTS = ("random", "fixed")
LAYOUT_JITTER = 0.02  # m per axis around a task's canonical layout (layout="fixed")
LAYOUT_YAW_JITTER = 0.3  # rad
DISPLACEMENT_TRIES = 200  # direction draws for one layout-perturbation displacement
_CANONICAL: dict[str, tuple[list[tuple[str, str]], np.ndarray, np.ndarray]] = {}
SPATIAL_WORDS = ("leftmost", "rightmost", "front", "back", "nearest_bowl", "left_of", "this")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "front": (0.0, -1.0), "back": (0.0, 1.0)}
PUSH_DISTANCE = 0.07  # metres an object must travel for a push to count
LIFT_HEIGHT = 0.06  # metres above rest for a lift to count


@dataclass(frozen=True)
class ObjRef:
    """How an instruction names an object: kind, colour, optional spatial word + anchor."""

    kind: str
    color: str = ""
    spatial: str = ""
    anchor: ObjRef | None = None

    @property
    def label(self) -> str:
        return f"{self.color} {self.kind}" if self.color else self.kind


@dataclass(frozen=True)
class Goal:
    """One sub-task: ``verb`` in place_in, place_on, stack, lift, push."""

    verb: str
    obj: ObjRef
    dest: ObjRef | None = None
    direction: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A task: its id, the goals (in order), the objects its layout needs, a step limit."""

    id: str
    goals: tuple[Goal, ...]
    objects: tuple[tuple[str, str], ...]
    step_limit: int

    @property
    def suite(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass
class ResolvedGoal:
    """A goal bound to pooled objects, with the state it started from."""

    goal: Goal
    obj: SceneObject
    dest: SceneObject | None
    start_xy: np.ndarray


@dataclass
class Episode:
    """Everything an episode needs beyond the sim: task, bound goals, instruction parts."""

    task: TaskSpec
    goals: list[ResolvedGoal]
    objects: list[SceneObject]
    template_index: int
    instruction: str = ""


# ---------------------------------------------------------------- task tables
def _cube(color: str, spatial: str = "", anchor: ObjRef | None = None) -> ObjRef:
    return ObjRef("cube", color, spatial, anchor)


BOWL, PLATE = ObjRef("bowl"), ObjRef("plate")
_GREEN_CYL = ObjRef("cylinder", "green")
_SPATIAL_OBJECTS = (("cube", "red"),) * 3 + (("cylinder", "green"), ("bowl", ""), ("plate", ""))
_GOAL_OBJECTS = (
    ("cube", "red"),
    ("cube", "blue"),
    ("cube", "yellow"),
    ("cylinder", "green"),
    ("bowl", ""),
    ("plate", ""),
)


def _spatial(name: str, spatial: str, verb: str, dest: ObjRef, anchor: ObjRef | None = None) -> TaskSpec:
    goal = Goal(verb, _cube("red", spatial, anchor), dest)
    return TaskSpec(f"spatial/{name}", (goal,), _SPATIAL_OBJECTS, 160)


def _object(kind: str, color: str, verb: str, dest: ObjRef) -> TaskSpec:
    where = "in_bowl" if verb == "place_in" else "on_plate"
    goal = Goal(verb, ObjRef(kind, color), dest)
    return TaskSpec(
        f"object/{color}_{kind}_{where}", (goal,), ((kind, color), ("bowl", ""), ("plate", "")), 160
    )


def _ambiguous(kind: str, color: str, verb: str, dest: ObjRef) -> TaskSpec:
    where = "in_bowl" if verb == "place_in" else "on_plate"
    goal = Goal(verb, ObjRef(kind, color, "this"), dest)
    objects = ((kind, color), (kind, color), ("bowl", ""), ("plate", ""))
    return TaskSpec(f"ambiguous/this_{color}_{kind}_{where}", (goal,), objects, 160)


_RED, _BLUE, _YELLOW = _cube("red"), _cube("blue"), _cube("yellow")
TASKS: dict[str, TaskSpec] = {
    t.id: t
    for t in (
        _spatial("pick_leftmost_place_bowl", "leftmost", "place_in", BOWL),
        _spatial("pick_rightmost_place_bowl", "rightmost", "place_in", BOWL),
        _spatial("pick_front_place_plate", "front", "place_on", PLATE),
        _spatial("pick_back_place_plate", "back", "place_on", PLATE),
        _spatial("pick_nearest_bowl_place_plate", "nearest_bowl", "place_on", PLATE),
        _spatial("pick_left_of_cylinder_place_bowl", "left_of", "place_in", BOWL, _GREEN_CYL),
        _object("cube", "red", "place_in", BOWL),
        _object("cylinder", "blue", "place_in", BOWL),
        _object("cube", "green", "place_on", PLATE),
        _object("cylinder", "yellow", "place_on", PLATE),
        _object("cube", "purple", "place_in", BOWL),
        _object("cylinder", "orange", "place_on", PLATE),
        TaskSpec("goal/put_red_cube_in_bowl", (Goal("place_in", _RED, BOWL),), _GOAL_OBJECTS, 160),
        TaskSpec("goal/put_blue_cube_on_plate", (Goal("place_on", _BLUE, PLATE),), _GOAL_OBJECTS, 160),
        TaskSpec("goal/stack_red_cube_on_blue_cube", (Goal("stack", _RED, _BLUE),), _GOAL_OBJECTS, 160),
        TaskSpec(
            "goal/push_green_cylinder_right", (Goal("push", _GREEN_CYL, None, "right"),), _GOAL_OBJECTS, 160
        ),
        TaskSpec("goal/lift_yellow_cube", (Goal("lift", _YELLOW),), _GOAL_OBJECTS, 120),
        TaskSpec(
            "goal/put_green_cylinder_on_plate", (Goal("place_on", _GREEN_CYL, PLATE),), _GOAL_OBJECTS, 160
        ),
        TaskSpec(
            "long/red_cube_in_bowl_then_blue_cube_on_plate",
            (Goal("place_in", _RED, BOWL), Goal("place_on", _BLUE, PLATE)),
            _GOAL_OBJECTS,
            320,
        ),
        TaskSpec(
            "long/green_cylinder_on_plate_then_yellow_cube_in_bowl",
            (Goal("place_on", _GREEN_CYL, PLATE), Goal("place_in", _YELLOW, BOWL)),
            _GOAL_OBJECTS,
            320,
        ),
        TaskSpec(
            "long/yellow_cube_in_bowl_then_stack_red_on_blue",
            (Goal("place_in", _YELLOW, BOWL), Goal("stack", _RED, _BLUE)),
            _GOAL_OBJECTS,
            320,
        ),
        TaskSpec(
            "long/push_green_cylinder_left_then_blue_cube_in_bowl",
            (Goal("push", _GREEN_CYL, None, "left"), Goal("place_in", _BLUE, BOWL)),
            _GOAL_OBJECTS,
            320,
        ),
        _ambiguous("cube", "red", "place_in", BOWL),
        _ambiguous("cube", "red", "place_on", PLATE),
        _ambiguous("cylinder", "green", "place_in", BOWL),
        _ambiguous("cylinder", "green", "place_on", PLATE),
    )
}


def check_layout(layout: str) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`, else a ``ValueError`` naming the choices."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    return layout


def suite_tasks(suite: str) -> list[str]:
    """Task ids of ``suite`` in a stable order."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {SUITES}")
    return [t for t in TASKS if t.startswith(suite + "/")]


def get_task(suite: str, task: str) -> TaskSpec:
    """The task ``task`` (full id ``suite/name`` or just ``name``) of ``suite``."""
    ids = suite_tasks(suite)
    full = task if task.startswith(suite + "/") else f"{suite}/{task}"
    if full not in TASKS:
        raise ValueError(f"unknown task {task!r} in suite {suite!r}; choose one of {ids}")
    return TASKS[full]


# ---------------------------------------------------------------- layouts
def referenced(task: TaskSpec) -> set[tuple[str, str]]:
    """(kind, colour) pairs the instruction names; distractors must avoid them."""
    out = set()
    for g in task.goals:
        for ref in (g.obj, g.dest, g.obj.anchor):
            if ref is not None:
                out.add((ref.kind, ref.color))
    return out


def _object_suite_distractors(task: TaskSpec, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Three graspable distractors: same colour / other kind, same kind / other colour, random."""
    kind, color = task.goals[0].obj.kind, task.goals[0].obj.color
    other_kind = "cylinder" if kind == "cube" else "cube"
    colors = [c for c in TASK_COLORS if c != color]
    picks = [(other_kind, color), (kind, str(rng.choice(colors)))]
    while len(picks) < 3:
        cand = (str(rng.choice(["cube", "cylinder"])), str(rng.choice(colors)))
        if cand not in picks:
            picks.append(cand)
    return picks


def in_view(x: float, y: float) -> bool:
    """Whether an object centred at (x, y) stays inside the clean base view (a trapezoid)."""
    return abs(x) <= 0.17 + 0.28 * (y - PLACE_REGION[1][0])


def _overlaps(kind: str, x: float, y: float, placed: list[tuple[str, float, float]], margin: float) -> bool:
    """Whether a ``kind`` object at (x, y) comes within ``margin`` of any ``placed`` footprint."""
    return any(np.hypot(x - px, y - py) < FOOTPRINT[kind] + FOOTPRINT[pk] + margin for pk, px, py in placed)


def sample_positions(
    kinds: list[str],
    rng: np.random.Generator,
    fixed: list[tuple[str, float, float]] = (),
    region: tuple[tuple[float, float], tuple[float, float]] = PLACE_REGION,
    margin: float = 0.035,
    tries: int = 200,
) -> list[tuple[float, float]] | None:
    """Non-overlapping (x, y) for ``kinds`` avoiding the already ``fixed`` objects; None if crowded."""
    placed = [(k, x, y) for k, x, y in fixed]
    out = []
    for kind in kinds:
        for _ in range(tries):
            x, y = rng.uniform(*region[0]), rng.uniform(*region[1])
            if not in_view(x, y):
                continue
            if not _overlaps(kind, x, y, placed, margin):
                placed.append((kind, x, y))
                out.append((float(x), float(y)))
                break
        else:
            return None
    return out


def _criterion(ref: ObjRef, cand: np.ndarray, anchors: dict[str, np.ndarray]) -> np.ndarray:
    """Score per candidate (lower is the referent) for a spatial word."""
    if ref.spatial == "leftmost":
        return cand[:, 0]
    if ref.spatial == "rightmost":
        return -cand[:, 0]
    if ref.spatial == "front":
        return cand[:, 1]
    if ref.spatial == "back":
        return -cand[:, 1]
    if ref.spatial == "nearest_bowl":
        return np.linalg.norm(cand[:, :2] - anchors["bowl"][:2], axis=1)
    if ref.spatial == "left_of":
        gap = anchors[ref.anchor.label][0] - cand[:, 0]  # positive when left of the anchor
        return np.where(gap > 0.04, gap, np.inf)
    raise ValueError(f"unknown spatial word {ref.spatial!r}; expected one of {SPATIAL_WORDS}")


def resolve(ref: ObjRef, scene: Scene, objects: list[SceneObject]) -> tuple[SceneObject, float]:
    """The object ``ref`` names among ``objects`` and the margin to the runner-up (m)."""
    cands = [o for o in objects if o.kind == ref.kind and o.color == ref.color]
    if not cands:
        raise ValueError(f"no {ref.label} in the layout")
    if ref.spatial == "this":  # the one a visual prompt points at: the first placed
        return cands[0], np.inf
    if not ref.spatial:
        return cands[0], np.inf if len(cands) == 1 else 0.0
    anchors = {o.label: scene.pos(o) for o in objects if o.label != ref.label}
    scores = _criterion(ref, np.stack([scene.pos(o) for o in cands]), anchors)
    order = np.argsort(scores)
    if not np.isfinite(scores[order[0]]):
        return cands[order[0]], 0.0
    margin = float(scores[order[1]] - scores[order[0]]) if len(cands) > 1 else np.inf
    return cands[order[0]], margin


def _push_corridor_clear(xy: np.ndarray, direction: str, others: list[np.ndarray]) -> bool:
    """Room behind (for the gripper) and ahead (for the travel) of a pushed object, on the table."""
    d = np.array(DIRECTIONS[direction])
    end = xy + d * 0.14
    if not (PLACE_REGION[0][0] - 0.05 <= end[0] <= PLACE_REGION[0][1] + 0.05):
        return False
    if not (PLACE_REGION[1][0] - 0.05 <= end[1] <= PLACE_REGION[1][1] + 0.05):
        return False
    for o in others:
        rel = o[:2] - xy
        along, across = float(rel @ d), float(abs(rel[0] * d[1] - rel[1] * d[0]))
        if -0.12 <= along <= 0.24 and across < 0.11:
            return False
    return True


def layout_ok(episode: Episode, scene: Scene) -> bool:
    """Unambiguous referents (margin >= 4 cm) and free push corridors."""
    for rg in episode.goals:
        if rg.goal.obj.spatial:
            _, margin = resolve(rg.goal.obj, scene, episode.objects)
            if margin < 0.04:
                return False
        if rg.goal.verb == "push":
            others = [scene.pos(o) for o in episode.objects if o is not rg.obj]
            if not _push_corridor_clear(scene.pos(rg.obj)[:2], rg.goal.direction, others):
                return False
    return True


def build_episode(
    task: TaskSpec,
    scene: Scene,
    rng: np.random.Generator,
    n_distractors: int = 0,
    distractor_rng: np.random.Generator | None = None,
    ee_pos: np.ndarray | None = None,
    ee_rpy: np.ndarray | None = None,
    tries: int = 50,
    layout: str = "random",
    displacement: float = 0.0,
) -> Episode:
    """Sample a valid layout for ``task`` (plus optional extra distractors) and bind its goals.

    ``layout="random"`` places the task's objects anywhere on the table; ``"fixed"`` is
    LIBERO's protocol: every task has one canonical layout (objects, distractors and
    poses drawn once from the task id) and episodes jitter it by up to
    ``LAYOUT_JITTER`` m and ``LAYOUT_YAW_JITTER`` rad. The task layout uses ``rng`` only,
    and distractors (from ``distractor_rng``) keep out of push corridors and never share a
    (kind, colour) with a named object, so adding them changes neither the task's objects
    nor which object an instruction names. ``displacement`` (m, fixed layouts only: the layout
    perturbation, LIBERO-Plus's target displacement) then moves each object of the episode's
    layout that far in a random direction drawn from ``distractor_rng``.
    """
    check_layout(layout)
    kwargs = {} if ee_pos is None else {"ee_pos": ee_pos}
    canonical = canonical_layout(task, scene) if layout == "fixed" else None
    drng = distractor_rng if distractor_rng is not None else rng
    for _ in range(tries):
        if canonical is None:
            objects = list(task.objects)
            if task.suite == "object":
                objects += _object_suite_distractors(task, rng)
            xy = sample_positions([k for k, _ in objects], rng)
            yaws = rng.uniform(-0.6, 0.6, size=len(objects))
        else:
            objects, base_xy, base_yaws = canonical
            if task.suite == "ambiguous" and rng.random() < 0.5:  # the target twin takes the other place
                base_xy = base_xy[[1, 0, *range(2, len(base_xy))]]
            xy = _placed(objects, base_xy + rng.uniform(-LAYOUT_JITTER, LAYOUT_JITTER, size=base_xy.shape))
            yaws = base_yaws + rng.uniform(-LAYOUT_YAW_JITTER, LAYOUT_YAW_JITTER, size=len(objects))
        template_index = int(rng.integers(1 << 30))
        if xy is None:
            continue
        placements = [(k, c, x, y, float(w)) for (k, c), (x, y), w in zip(objects, xy, yaws, strict=True)]
        episode = _bind(task, scene, scene.reset(placements, ee_rpy=ee_rpy, **kwargs), template_index)
        if not layout_ok(episode, scene):
            continue
        if displacement and canonical is not None:
            # the clean episode's layout, each object then moved; only the directions are redrawn
            for _ in range(DISPLACEMENT_TRIES):
                moved = _placed(objects, np.asarray(xy) + _displacements(displacement, len(objects), drng))
                if moved is None:
                    continue
                placements = [(p[0], p[1], x, y, p[4]) for p, (x, y) in zip(placements, moved, strict=True)]
                episode = _bind(task, scene, scene.reset(placements, ee_rpy=ee_rpy, **kwargs), template_index)
                if layout_ok(episode, scene):
                    break
            else:
                continue
        if n_distractors:
            pushes = [
                (scene.pos(g.obj)[:2], g.goal.direction) for g in episode.goals if g.goal.verb == "push"
            ]
            placements += _distractors(task, n_distractors, drng, placements, pushes)
            episode = _bind(task, scene, scene.reset(placements, ee_rpy=ee_rpy, **kwargs), template_index)
        return episode
    raise RuntimeError(
        f"could not sample a valid layout for {task.id} in {tries} tries; the table is too full"
    )


def canonical_layout(
    task: TaskSpec, scene: Scene
) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """The task's fixed layout: (objects, xy ``[N, 2]``, yaws ``[N]``), the same for every call.

    Drawn from a generator seeded by the task id until a layout is valid with margin to
    spare for jitter (unambiguous referents, free push corridors, no overlaps); ``scene``
    is reset while checking.
    """
    if task.id not in _CANONICAL:
        rng = np.random.default_rng(zlib.crc32(task.id.encode()))
        for _ in range(500):
            objects = list(task.objects)
            if task.suite == "object":
                objects += _object_suite_distractors(task, rng)
            xy = sample_positions([k for k, _ in objects], rng, margin=0.035 + 2 * LAYOUT_JITTER)
            yaws = rng.uniform(-0.6, 0.6, size=len(objects))
            if xy is None:
                continue
            placements = [(k, c, x, y, float(w)) for (k, c), (x, y), w in zip(objects, xy, yaws, strict=True)]
            if layout_ok(_bind(task, scene, scene.reset(placements), 0), scene):
                _CANONICAL[task.id] = (objects, np.asarray(xy), yaws)
                break
        else:
            raise RuntimeError(f"no valid canonical layout for {task.id}")
    return _CANONICAL[task.id]


def _placed(objects: list[tuple[str, str]], xy: np.ndarray) -> list[tuple[float, float]] | None:
    """``xy`` as a list; None when objects would overlap or leave the view."""
    placed: list[tuple[str, float, float]] = []
    for (kind, _), (x, y) in zip(objects, xy, strict=True):
        if not in_view(x, y) or _overlaps(kind, x, y, placed, 0.02):
            return None
        placed.append((kind, x, y))
    return [(float(x), float(y)) for _, x, y in placed]


def _displacements(distance: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, 2]`` moves of length ``distance`` in random directions."""
    heading = rng.uniform(-np.pi, np.pi, size=n)
    return distance * np.stack([np.cos(heading), np.sin(heading)], axis=1)


def _bind(task: TaskSpec, scene: Scene, active: list[SceneObject], template_index: int) -> Episode:
    """Resolve every goal's references among the task's own objects (the first ones placed)."""
    own = active[: len(task.objects) + (3 if task.suite == "object" else 0)]
    goals = []
    for g in task.goals:
        obj, _ = resolve(g.obj, scene, own)
        dest = resolve(g.dest, scene, own)[0] if g.dest is not None else None
        goals.append(ResolvedGoal(g, obj, dest, scene.pos(obj)[:2]))
    return Episode(task, goals, active, template_index)


def _distractors(
    task: TaskSpec,
    n: int,
    rng: np.random.Generator,
    placed: list[tuple[str, str, float, float, float]],
    pushes: list[tuple[np.ndarray, str]],
) -> list[tuple[str, str, float, float, float]]:
    """Up to ``n`` extra cubes / cylinders whose (kind, colour) the instruction never names."""
    banned = referenced(task) | {(k, c) for k, c, *_ in placed}
    pool = [(k, c) for k in ("cube", "cylinder") for c in TASK_COLORS if (k, c) not in banned]
    counts = {k: sum(1 for p in placed if p[0] == k) for k in ("cube", "cylinder")}

    out: list[tuple[str, str, float, float, float]] = []
    order = rng.permutation(len(pool))
    fixed = [(k, x, y) for k, _, x, y, _ in placed]
    for idx in order:
        if len(out) == n:
            break
        kind, color = pool[idx]
        if counts[kind] >= POOL[kind]:
            continue
        for _ in range(20):
            xy = sample_positions([kind], rng, fixed=fixed)
            if xy is None or all(_push_corridor_clear(p, d, [np.array(xy[0])]) for p, d in pushes):
                break
        else:
            xy = None
        if xy is None:
            break
        x, y = xy[0]
        fixed.append((kind, x, y))
        counts[kind] += 1
        out.append((kind, color, x, y, float(rng.uniform(-0.6, 0.6))))
    return out


# ---------------------------------------------------------------- success
def goal_done(rg: ResolvedGoal, scene: Scene) -> bool:
    """Whether one bound goal holds in the current sim state."""
    p = scene.pos(rg.obj)
    verb = rg.goal.verb
    if verb == "lift":
        return bool(p[2] >= REST_Z[rg.obj.kind] + LIFT_HEIGHT and scene.touching_gripper(rg.obj))
    if verb == "push":
        d = np.array(DIRECTIONS[rg.goal.direction])
        moved = float((p[:2] - rg.start_xy) @ d)
        return bool(moved >= PUSH_DISTANCE and p[2] < REST_Z[rg.obj.kind] + 0.01)
    if scene.touching_gripper(rg.obj):
        return False
    q = scene.pos(rg.dest)
    dist = float(np.hypot(*(p[:2] - q[:2])))
    half = REST_Z[rg.obj.kind]
    if verb == "place_in":
        return bool(dist < BOWL_RADIUS - 0.012 and p[2] < 0.012 + half + 0.015)
    if verb == "place_on":
        top = q[2] + PLATE_HALF_H
        return bool(dist < PLATE_RADIUS - 0.01 and abs(p[2] - (top + half)) < 0.012)
    if verb == "stack":
        return bool(dist < 0.025 and 0.03 < p[2] - q[2] < 0.05)
    raise ValueError(f"unknown goal verb {verb!r}")


def success(episode: Episode, scene: Scene) -> bool:
    """All goals of the episode hold at once (long tasks keep the first sub-task done)."""
    return all(goal_done(rg, scene) for rg in episode.goals)

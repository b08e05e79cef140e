"""Grounding benchmark on held-out tabletop scenes (seed 001 §VI-B: Where2Place, RefSpatial).

Does a VLM ground language in the image? Questions come from
:func:`vlaworks.sim.vl_data.generate_vl_samples` on a scene stream of their own
(:data:`vlaworks.miniature.GROUNDING_SCENE_STREAM`, seed
:data:`~vlaworks.miniature.GROUNDING_HELD_OUT_SEED`), so no pretraining, co-training or VQA
scene is among them, and are answered by greedy decoding (:func:`vlaworks.eval.vqa.answer_questions`).
Each kind is scored against the scene's geometry, not a reference string:

* ``point`` ("Point to the red cube."): the answer's point lies inside the named object's
  segmentation mask (:func:`point_in_region`);
* ``box``: the answer's box has IoU >= 0.5 with the object's visible bounding box;
* ``free_space`` (Where2Place / RefSpatial placement: "Point to a free spot to the left of
  the bowl."): the point is on the table, on no object (nor the gripper) and inside the
  relation's region (:func:`vlaworks.sim.vl_data.relation_region`);
* ``spatial`` (left / right yes-no, which object is closest): normalised exact match;
* ``affordance`` ("Where should the gripper grasp the red cube?"): the point lies inside the
  object's mask.

A point is its first two numbers, a box its first four, both in normalised image
coordinates (x right, y down); an answer without them, or a point outside the image,
counts as a failure. Results are (hits, n) per kind, reported with 95 % Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlaworks.eval.stats import wilson_interval
from vlaworks.eval.vqa import BOX_IOU, answer_questions, box_iou, normalise_text, parse_numbers
from vlaworks.miniature import GROUNDING_HELD_OUT_SEED, GROUNDING_SCENE_STREAM

GROUNDING_KINDS = ("point", "box", "free_space", "spatial", "affordance")
METRIC_NAMES = {
    "point": "point in the named object's mask",
    "box": "box IoU >= 0.5",
    "free_space": "free-space point (table, no object, relation holds)",
    "spatial": "spatial-relation answer (left / right, closest)",
    "affordance": "grasp point in the object's mask",
}
Counts = dict[str, tuple[int, int]]


@dataclass
class GroundingItem:
    """One benchmark question and what it is scored against."""

    image: np.ndarray
    prompt: str
    kind: str
    answer: str
    region: np.ndarray | None = None
    box: np.ndarray | None = None


def grounding_items(
    n: int, seed: int = GROUNDING_HELD_OUT_SEED, image_size: int = 64, kinds: Sequence[str] = GROUNDING_KINDS
) -> list[GroundingItem]:
    """``n`` held-out questions, their kinds drawn uniformly from ``kinds``."""
    from vlaworks.sim.vl_data import generate_vl_samples

    unknown = sorted(set(kinds) - set(GROUNDING_KINDS))
    if unknown or not kinds:
        raise ValueError(f"Grounding kinds must be a non-empty subset of {GROUNDING_KINDS}; got {kinds}.")
    samples = generate_vl_samples(
        n, seed, image_size, kinds=tuple(kinds), stream=GROUNDING_SCENE_STREAM, truth=True
    )
    return [
        GroundingItem(s["image"], s["prompt"], s["kind"], s["answer"], s["region"], s["box"]) for s in samples
    ]


def parse_point(text: str) -> np.ndarray | None:
    """The first two numbers of ``text`` as a point, or None."""
    numbers = parse_numbers(text)
    return np.array(numbers[:2]) if len(numbers) >= 2 else None


def parse_box(text: str) -> np.ndarray | None:
    """The first four numbers of ``text`` as ``[x0, y0, x1, y1]``, or None."""
    numbers = parse_numbers(text)
    return np.array(numbers[:4]) if len(numbers) >= 4 else None


def point_in_region(point: np.ndarray | None, region: np.ndarray) -> bool:
    """Whether the normalised ``point`` falls on a True pixel of ``region`` (bool ``[H, W]``):
    pixel ``(floor(x W), floor(y H))``, the far edge 1.0 belonging to the last pixel; a missing
    point or one outside [0, 1]^2 misses."""
    if point is None or not (0.0 <= point[0] <= 1.0 and 0.0 <= point[1] <= 1.0):
        return False
    h, w = region.shape
    u, v = min(int(point[0] * w), w - 1), min(int(point[1] * h), h - 1)
    return bool(region[v, u])


def score_item(item: GroundingItem, prediction: str) -> bool:
    """Whether ``prediction`` answers ``item`` (criteria in the module docstring)."""
    if item.kind == "box":
        pred = parse_box(prediction)
        return pred is not None and box_iou(pred, item.box) >= BOX_IOU
    if item.region is not None:
        return point_in_region(parse_point(prediction), item.region)
    return normalise_text(prediction) == normalise_text(item.answer)


def grounding_counts(
    model: Any,
    items: Sequence[GroundingItem],
    *,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    postprocess: Callable[[str], str] | None = None,
) -> Counts:
    """(hits, n) per kind of ``model`` (a policy, run / policy folder or bare backbone) on
    ``items``; ``max_new_tokens`` defaults to the longest reference answer's tokens + 8.
    ``postprocess`` maps each decoded answer before scoring, for a model that writes its answers
    in another format than the reference (e.g. location tokens instead of numbers)."""
    from vlaworks.models.checkpoint import load_policy

    if not items:
        raise ValueError("grounding_counts got no items; ask for n >= 1.")
    model = load_policy(model)
    if max_new_tokens is None:
        tok = getattr(model, "backbone", model).tokenizer
        max_new_tokens = max(len(tok(it.answer, add_special_tokens=False).input_ids) for it in items) + 8
    was_training = model.training
    model.eval()
    hits: dict[str, list[bool]] = {}
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            images = np.stack([it.image for it in chunk])
            answers = answer_questions(model, images, [it.prompt for it in chunk], max_new_tokens)
            for it, pred in zip(chunk, answers, strict=True):
                pred = postprocess(pred) if postprocess is not None else pred
                hits.setdefault(it.kind, []).append(score_item(it, pred))
    finally:
        model.train(was_training)
    return {kind: (int(sum(v)), len(v)) for kind, v in sorted(hits.items())}


def grounding_table(results: Mapping[str, Counts]) -> str:
    """Markdown table: one row per kind, one column per model label, "rate % [95 % CI]"."""
    if not results:
        raise ValueError("grounding_table got no results.")
    labels = list(results)
    kinds = [k for k in GROUNDING_KINDS if any(k in r for r in results.values())]
    lines = ["| metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for kind in kinds:
        cells = []
        for label in labels:
            if kind not in results[label]:
                cells.append("n/a")
                continue
            k, n = results[label][kind]
            lo, hi = wilson_interval(k, n)
            cells.append(f"{100 * k / n:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] (n = {n})")
        lines.append(f"| {METRIC_NAMES[kind]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_grounding_report(results: Mapping[str, Counts], out: str | Path, title: str = "Grounding") -> Path:
    """Write :func:`grounding_table` as markdown to ``out``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# {title} (held-out tabletop scenes)\n\nSuccess %, 95 % Wilson interval, n questions.\n\n"
        + grounding_table(results)
    )
    return path

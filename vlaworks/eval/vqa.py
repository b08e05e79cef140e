"""VQA accuracy on held-out tabletop questions (seed 004, Fig. 5): does the VLA still answer?

Questions come from :func:`vlaworks.sim.vl_data.generate_vl_samples` with a seed of its
own (:data:`vlaworks.miniature.VQA_HELD_OUT_SEED`, far from the small seeds training runs use; the generator's
stream is keyed on the seed, so the scenes differ from any training seed's), and are
answered by greedy decoding: :meth:`VLAPolicy.answer` for a policy,
:func:`vlaworks.models.lm_text.greedy_decode` through the backbone contract for a bare
backbone (the VLM before VLA training).

Scoring per kind (:func:`score_answer`):

* ``point`` / ``affordance`` / ``free_space``: the first two numbers of the answer form the
  point; correct if its L-inf distance to the reference point is at most ``tol`` (0.1 of the
  image). For ``free_space`` that is a proxy (any free spot in the relation's region is right):
  :mod:`vlaworks.eval.grounding` scores points against the scene's masks instead;
* ``box``: the first four numbers form ``[x0, y0, x1, y1]``; correct if its IoU with the
  true box is at least 0.5 (the usual grounding criterion); an inverted box scores 0;
* ``plan``: the words (numbers masked out) must match exactly and every point must lie
  within ``tol`` of the true one, in order;
* every other kind (``caption``, ``count``, ``exists``, ``spatial``, ``blocking``,
  ``first_move``): normalised exact match
  (case, surrounding spaces and a final full stop ignored).

A malformed answer (too few numbers, unparsable) scores 0.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlaworks.miniature import VQA_HELD_OUT_SEED
from vlaworks.models.backbones.base import Backbone
from vlaworks.models.lm_text import greedy_decode
from vlaworks.processing import PolicyProcessor, collate

#: default seed of the held-out VQA questions (training uses small seeds)
POINT_TOLERANCE = 0.1
BOX_IOU = 0.5
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)")
POINT_KINDS = ("point", "affordance", "free_space")


def parse_numbers(text: str) -> list[float]:
    """All decimal numbers in ``text``, in order."""
    return [float(m) for m in _NUMBER.findall(text)]


def normalise_text(text: str) -> str:
    """Lower case, single spaces, no surrounding spaces or final full stop."""
    return " ".join(text.lower().split()).rstrip(".").strip()


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x0, y0, x1, y1]`` boxes; 0 when either is empty or inverted."""
    if a[2] <= a[0] or a[3] <= a[1] or b[2] <= b[0] or b[3] <= b[1]:
        return 0.0
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _points_close(pred: list[float], truth: list[float], tol: float) -> bool:
    if len(pred) < len(truth):
        return False
    return bool(np.max(np.abs(np.asarray(pred[: len(truth)]) - np.asarray(truth))) <= tol + 1e-9)


def score_answer(kind: str, prediction: str, truth: str, tol: float = POINT_TOLERANCE) -> bool:
    """Whether ``prediction`` answers a question of ``kind`` whose answer is ``truth``
    (criteria in the module docstring)."""
    if kind in POINT_KINDS:
        return _points_close(parse_numbers(prediction), parse_numbers(truth)[:2], tol)
    if kind == "box":
        pred, true = parse_numbers(prediction), parse_numbers(truth)
        return len(pred) >= 4 and box_iou(pred[:4], true[:4]) >= BOX_IOU
    if kind == "plan":
        words = normalise_text(_NUMBER.sub("#", prediction)) == normalise_text(_NUMBER.sub("#", truth))
        return words and _points_close(parse_numbers(prediction), parse_numbers(truth), tol)
    return normalise_text(prediction) == normalise_text(truth)


# ----------------------------------------------------------------------------- answering
def answer_questions(
    model: Any, images: np.ndarray, prompts: list[str], max_new_tokens: int = 32
) -> list[str]:
    """Greedy answers of a policy (``.answer``, images laid out by its processor as in
    co-training: view 0 at the policy's size, black other views) or of a bare backbone
    (:func:`vlaworks.models.lm_text.greedy_decode`, one view as rendered)."""
    if not hasattr(model, "answer") and not isinstance(model, Backbone):
        raise TypeError(f"Expected a VLAPolicy or a Backbone; got {type(model).__name__}.")
    processor = getattr(model, "processor", None) or PolicyProcessor(("base",))
    batch = collate([processor.vision_language(image, p) for image, p in zip(images, prompts, strict=True)])
    if hasattr(model, "answer"):
        return model.answer(batch.to(model.device), max_new_tokens=max_new_tokens)
    device = next(model.parameters()).device
    return greedy_decode(model, batch.images.to(device), list(prompts), max_new_tokens=max_new_tokens)


def vqa_accuracy(
    model: Any,
    n: int = 200,
    seed: int = VQA_HELD_OUT_SEED,
    *,
    image_size: int = 128,
    batch_size: int = 16,
    tol: float = POINT_TOLERANCE,
    max_new_tokens: int | None = None,
    samples: Sequence[dict] | None = None,
) -> dict[str, float]:
    """Accuracy per question kind and ``"overall"`` on ``n`` held-out questions.

    ``model`` is a policy object, a checkpoint / training-run folder or a bare backbone.
    ``max_new_tokens`` defaults to the longest true answer's token count + 8, so no
    answer is cut short by the budget. ``samples`` replaces the generated questions.
    """
    from vlaworks.models.checkpoint import load_policy

    model = load_policy(model)
    if samples is None:
        from vlaworks.sim.vl_data import generate_vl_samples

        samples = list(generate_vl_samples(n, seed, image_size))
    if not samples:
        raise ValueError("vqa_accuracy got no questions; pass n >= 1.")
    backbone = getattr(model, "backbone", model)
    if max_new_tokens is None:
        tok = backbone.tokenizer
        max_new_tokens = max(len(tok(s["answer"], add_special_tokens=False).input_ids) for s in samples) + 8
    was_training = model.training
    model.eval()
    correct: dict[str, list[bool]] = defaultdict(list)
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            images = np.stack([s["image"] for s in chunk])
            answers = answer_questions(model, images, [s["prompt"] for s in chunk], max_new_tokens)
            for s, pred in zip(chunk, answers, strict=True):
                correct[s["kind"]].append(score_answer(s["kind"], pred, s["answer"], tol))
    finally:
        model.train(was_training)
    result = {kind: float(np.mean(v)) for kind, v in sorted(correct.items())}
    result["overall"] = float(np.mean([x for v in correct.values() for x in v]))
    return result


def write_vqa_report(results: dict[str, dict[str, float]], out: str | Path) -> Path:
    """Markdown table of :func:`vqa_accuracy` results, one column per model label."""
    if not results:
        raise ValueError("write_vqa_report got no results.")
    labels = list(results)
    kinds = sorted({k for r in results.values() for k in r if k != "overall"}) + ["overall"]
    lines = ["| kind | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for kind in kinds:
        cells = [f"{100 * results[m][kind]:.1f}%" if kind in results[m] else "n/a" for m in labels]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# VQA accuracy (held-out tabletop questions)\n\n" + "\n".join(lines) + "\n")
    return path


def run_vqa_comparison(
    path_or_policy: Any,
    out: str | Path | None = None,
    *,
    n: int = 200,
    seed: int = VQA_HELD_OUT_SEED,
    image_size: int = 128,
) -> dict[str, dict[str, float]]:
    """VQA accuracy of the backbone a policy started from (``before``, see
    :func:`vlaworks.eval.probes.initial_backbone`) and of the policy (``after``) on the same
    held-out questions; with ``out``, writes the markdown table (for a ``vlaworks`` command)."""
    from vlaworks.eval.probes import initial_backbone
    from vlaworks.models.checkpoint import load_policy
    from vlaworks.sim.vl_data import generate_vl_samples

    policy = load_policy(path_or_policy)
    samples = list(generate_vl_samples(n, seed, image_size))
    results = {
        "before": vqa_accuracy(initial_backbone(policy), samples=samples),
        "after": vqa_accuracy(policy, samples=samples),
    }
    if out is not None:
        write_vqa_report(results, out)
    return results

"""Linear probes of vision features (seed 004, Fig. 4): how much object semantics survive VLA training.

Seed 004 argues that fine-tuning a VLM into a VLA erodes the visual representation and
that a frozen anchor (the dual encoder) preserves it. This module measures it on the
tabletop world.

Probe design: **mask-pooled patch features -> object class.** The samples are the
objects of random tabletop scenes (:mod:`vlaworks.sim.probe_data`: the scene image, the
object's mask and its labels, ``color`` over the twelve colours for cubes / cylinders,
``kind`` over cube / cylinder / bowl / plate). The vision encoder sees the *whole scene*
(never a crop, so the features are the ones the policy uses); the object's feature is
the mean of its patch features weighted by the fraction of each patch covered by its
mask. A linear classifier trained on these features then tells how linearly decodable
each object's identity is from the patches where it lies: the object-semantic
information the encoder keeps, localised, with the scene's clutter around it.

Features: for backbones with a :class:`~vlaworks.models.vision.featurizer.VisionFeaturizer`
(Prismatic / PokeVLM) the featurizer's patch features *before* the projector (the
vision encoder itself, as in the paper); with a dual encoder the ``frozen`` and
``trained`` halves are probed separately as well as ``joint``. Other backbones expose
only projected image tokens (``encode_images``), which are probed as ``projected``;
their token grid must be square and spatial (Kosmos-2's resampled latents are not).

Before / after: :func:`initial_backbone` rebuilds the backbone a policy config starts
from (its registry name or pretrained folder, before any VLA training); a trained
checkpoint is the "after". :func:`compare_probes` lines both up. :func:`probe_references`
adds a mean-RGB probe and the majority-class rate on the same samples, which set the
scale (colour alone is near 100% from pixels; a probe at the majority rate has learnt
nothing). :func:`write_probe_report` writes the markdown tables and
:func:`run_probe_comparison` does all of it for one checkpoint (the entry point for a
``vlaworks probe`` command). A registry-name backbone (``prismatic-tiny``) is rebuilt
from a fixed seed, so "before" is *a* random initialisation, not the run's own; with a
pretrained folder it is exact.

Probe: multinomial logistic regression on standardised features, full-batch L-BFGS with
a small L2 penalty, float64, fixed initialisation: deterministic for given inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from vlaworks.miniature import probe_seeds
from vlaworks.models.backbones.base import Backbone
from vlaworks.models.checkpoint import load_policy
from vlaworks.models.vision.featurizer import VisionFeaturizer

if TYPE_CHECKING:
    from vlaworks.sim.probe_data import ProbeSample


def probe_classes() -> dict[str, tuple[str, ...]]:
    """Probe task -> its ordered class names (``color`` is probed on cubes / cylinders only)."""
    from vlaworks.sim.probe_data import KINDS
    from vlaworks.sim.scene import ALL_COLORS

    return {"color": tuple(ALL_COLORS), "kind": KINDS}


def train_test_samples(
    n_train: int, n_test: int, seed: int, image_size: int
) -> tuple[list[ProbeSample], list[ProbeSample]]:
    """The probe's training and test samples, from disjoint scene streams
    (:func:`vlaworks.miniature.probe_seeds`)."""
    from vlaworks.sim.probe_data import probe_samples

    train_seed, test_seed = probe_seeds(seed)
    return probe_samples(n_train, train_seed, image_size), probe_samples(n_test, test_seed, image_size)


def probe_labels(samples: Sequence[ProbeSample], task: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples that ``task`` applies to and their integer labels."""
    classes = probe_classes()
    if task not in classes:
        raise ValueError(f"Unknown probe task {task!r}; choose from {sorted(classes)}.")
    names = classes[task]
    keep, labels = [], []
    for i, s in enumerate(samples):
        value = s.color if task == "color" else s.kind
        if value:
            keep.append(i)
            labels.append(names.index(value))
    return np.asarray(keep, dtype=np.int64), np.asarray(labels, dtype=np.int64)


# ----------------------------------------------------------------------------- features
def _backbone_of(policy_or_backbone: Any) -> Backbone:
    backbone = getattr(policy_or_backbone, "backbone", policy_or_backbone)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"Expected a VLAPolicy or a Backbone; got {type(policy_or_backbone).__name__}.")
    return backbone


def patch_features(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    """Patch features ``[N, P, C]`` of uint8 images ``[N, 3, H, W]`` (see the module docstring)."""
    featurizer = getattr(backbone, "featurizer", None)
    if isinstance(featurizer, VisionFeaturizer):
        return featurizer.features(images)
    if getattr(backbone, "family", "") == "kosmos2":
        raise ValueError(
            "Kosmos-2 image tokens are resampled latent queries without a spatial layout; "
            "mask-pooled probes need a backbone with a patch grid."
        )
    feats, _ = backbone.encode_images(images[:, None])
    return feats


def mask_weights(masks: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Fraction of each patch of a square grid covered by each mask: ``[N, H, W]`` -> ``[N, P]``."""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f"The vision features have {num_patches} tokens, not a square patch grid; "
            "mask pooling needs a square grid in raster order."
        )
    return F.adaptive_avg_pool2d(masks[:, None].float(), side).flatten(1)


@torch.no_grad()
def extract_features(
    policy_or_backbone: Any, samples: Sequence[ProbeSample], batch_size: int = 16
) -> np.ndarray:
    """Mask-pooled vision features ``[N, C]`` (float32) of ``samples``, one row per object.

    Runs the backbone in eval mode (restoring its mode afterwards); scenes shared by
    several samples are encoded once per batch.
    """
    backbone = _backbone_of(policy_or_backbone)
    if not samples:
        raise ValueError("extract_features got no samples.")
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    rows: list[torch.Tensor] = []
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            images = torch.from_numpy(np.stack([s.image for s in chunk])).permute(0, 3, 1, 2).contiguous()
            feats = patch_features(backbone, images.to(device)).float()
            masks = torch.from_numpy(np.stack([s.mask for s in chunk])).to(device)
            weights = mask_weights(masks, feats.shape[1])
            pooled = (weights[:, :, None] * feats).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)
            rows.append(pooled.cpu())
    finally:
        backbone.train(was_training)
    return torch.cat(rows).numpy().astype(np.float32)


def feature_sets(policy_or_backbone: Any, features: np.ndarray) -> dict[str, np.ndarray]:
    """Named views of :func:`extract_features` output: ``frozen`` / ``trained`` / ``joint``
    for a dual featurizer (frozen half first), ``vision`` for a single featurizer,
    ``projected`` for backbones probed through their projected image tokens."""
    from vlaworks.models.vision.dual import DualFeaturizer

    featurizer = getattr(_backbone_of(policy_or_backbone), "featurizer", None)
    if isinstance(featurizer, DualFeaturizer):
        half = features.shape[1] // 2
        return {"frozen": features[:, :half], "trained": features[:, half:], "joint": features}
    if isinstance(featurizer, VisionFeaturizer):
        return {"vision": features}
    return {"projected": features}


# ----------------------------------------------------------------------------- probe
def linear_probe(
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    test_feats: np.ndarray,
    test_labels: np.ndarray,
    *,
    l2: float = 1e-3,
    max_iter: int = 200,
) -> float:
    """Test accuracy of a multinomial logistic regression fitted on the training features.

    Features are standardised with the training mean / std; the weights start at zero and
    are fitted by full-batch L-BFGS in float64 (deterministic). Classes absent from the
    training set can never be predicted, which the accuracy then reflects.
    """
    x_train = np.asarray(train_feats, dtype=np.float64)
    x_test = np.asarray(test_feats, dtype=np.float64)
    y_train = np.asarray(train_labels, dtype=np.int64)
    y_test = np.asarray(test_labels, dtype=np.int64)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"Probe features must be [N, C] with the same C; got train {x_train.shape}, test {x_test.shape}."
        )
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(
            f"Features and labels differ in length: train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)}."
        )
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("linear_probe needs at least one training and one test sample.")
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.from_numpy((x_train - mean) / std)
    yt = torch.from_numpy(y_train)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    weight = torch.zeros(xt.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xt @ weight + bias, yt) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        logits = torch.from_numpy((x_test - mean) / std) @ weight + bias
    return float((logits.argmax(-1).numpy() == y_test).mean())


def probe_features(
    train: np.ndarray,
    test: np.ndarray,
    train_samples: Sequence[ProbeSample],
    test_samples: Sequence[ProbeSample],
) -> dict[str, float]:
    """Accuracy per probe task for one feature set (rows aligned with the samples)."""
    out = {}
    for task in probe_classes():
        tr_idx, tr_y = probe_labels(train_samples, task)
        te_idx, te_y = probe_labels(test_samples, task)
        if len(tr_idx) and len(te_idx):
            out[task] = linear_probe(train[tr_idx], tr_y, test[te_idx], te_y)
    return out


def probe_backbone(
    policy_or_backbone: Any,
    train_samples: Sequence[ProbeSample],
    test_samples: Sequence[ProbeSample],
) -> dict[str, dict[str, float]]:
    """Feature set -> probe task -> test accuracy, on given samples."""
    train = extract_features(policy_or_backbone, train_samples)
    test = extract_features(policy_or_backbone, test_samples)
    train_sets = feature_sets(policy_or_backbone, train)
    test_sets = feature_sets(policy_or_backbone, test)
    return {
        name: probe_features(train_sets[name], test_sets[name], train_samples, test_samples)
        for name in train_sets
    }


def probe_references(
    train_samples: Sequence[ProbeSample], test_samples: Sequence[ProbeSample]
) -> dict[str, dict[str, float]]:
    """Reference rows that frame an encoder's numbers on the same samples: ``pixels`` (the
    probe on each object's mean RGB inside its mask: what colour alone gives, near 100% for
    ``color``) and ``majority`` (always the most frequent training class: chance level)."""

    def pixels(samples: Sequence[ProbeSample]) -> np.ndarray:
        return np.stack([s.image[s.mask].mean(0) for s in samples]).astype(np.float32)

    result = {
        "pixels": probe_features(pixels(train_samples), pixels(test_samples), train_samples, test_samples)
    }
    majority = {}
    for task in probe_classes():
        _, tr_y = probe_labels(train_samples, task)
        _, te_y = probe_labels(test_samples, task)
        if len(tr_y) and len(te_y):
            majority[task] = float((te_y == np.bincount(tr_y).argmax()).mean())
    result["majority"] = majority
    return result


def probe_policy(
    path_or_policy: Any, n_train: int = 400, n_test: int = 200, seed: int = 0, image_size: int = 128
) -> dict[str, dict[str, float]]:
    """Probe a policy (object, checkpoint folder or training-run folder) or a backbone.

    Train and test samples come from disjoint scene streams (:func:`train_test_samples`).
    Returns feature set -> task -> accuracy, e.g.
    ``{"frozen": {"color": 0.9, "kind": 0.8}, "trained": {...}, "joint": {...}}``.
    """
    train, test = train_test_samples(n_train, n_test, seed, image_size)
    return probe_backbone(load_policy(path_or_policy), train, test)


def initial_backbone(path_or_policy: Any) -> Backbone:
    """The backbone a policy's VLA training started from: its config's ``backbone`` (a
    registry name or pretrained folder) rebuilt without the dual encoder (whose frozen half
    is a copy of it anyway). A registry name gives a fresh random initialisation, seeded
    here (``torch.manual_seed(0)``) so repeated calls agree."""
    from vlaworks.models.backbones import resolve_backbone

    policy = load_policy(path_or_policy)
    config = getattr(policy, "config", None)
    if config is None:
        raise TypeError(f"initial_backbone needs a VLAPolicy or a checkpoint; got {type(policy).__name__}.")
    spec = resolve_backbone(config.backbone, config.backbone_options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return spec.build()  # the trunk its family builds: no dual encoder


@dataclass(frozen=True)
class ProbeRow:
    """One line of a probe table: a model label, a feature set, a task and its accuracy."""

    model: str
    features: str
    task: str
    accuracy: float


def probe_rows(label: str, result: dict[str, dict[str, float]]) -> list[ProbeRow]:
    """Flatten a :func:`probe_policy` result into rows labelled ``label``."""
    return [
        ProbeRow(label, features, task, acc)
        for features, tasks in result.items()
        for task, acc in tasks.items()
    ]


def starting_features(before: dict[str, dict[str, float]]) -> dict[str, float]:
    """The probe accuracies of the encoder every feature set of a trained policy started
    from: ``before``'s ``vision`` set, else its only one (a dual encoder's halves are both
    copies of it)."""
    if not before:
        raise ValueError("Probe result 'before' is empty; probe the initial backbone first.")
    return before.get("vision", next(iter(before.values())))


def compare_probes(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """Before / after VLA training, per (feature set, task) of ``after``: both accuracies and
    the change. A feature set absent before (a dual encoder's halves) is compared with the
    only (or ``vision``) set of ``before``, which is what both halves started from."""
    fallback = starting_features(before)
    rows = []
    for features, tasks in after.items():
        reference = before.get(features, fallback)
        for task, acc in tasks.items():
            prior = reference.get(task)
            rows.append(
                {
                    "features": features,
                    "task": task,
                    "before": prior,
                    "after": acc,
                    "delta": None if prior is None else acc - prior,
                }
            )
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _probe_table(rows: Sequence[ProbeRow | dict[str, Any]]) -> list[str]:
    if all(isinstance(r, ProbeRow) for r in rows):
        lines = ["| model | features | task | accuracy |", "|---|---|---|---:|"]
        return lines + [f"| {r.model} | {r.features} | {r.task} | {_pct(r.accuracy)} |" for r in rows]
    if all(isinstance(r, dict) for r in rows):
        lines = ["| features | task | before | after | change |", "|---|---|---:|---:|---:|"]
        for r in rows:
            delta = "n/a" if r["delta"] is None else f"{100 * r['delta']:+.1f} pt"
            lines.append(
                f"| {r['features']} | {r['task']} | {_pct(r['before'])} | {_pct(r['after'])} | {delta} |"
            )
        return lines
    raise TypeError("write_probe_report rows must all be ProbeRow or all compare_probes dicts.")


def write_probe_report(
    rows: Sequence[ProbeRow | dict[str, Any]],
    out: str | Path,
    references: dict[str, dict[str, float]] | None = None,
) -> Path:
    """Write a markdown table of :class:`ProbeRow` s (model / features / task / accuracy) or
    of :func:`compare_probes` rows (features / task / before / after / delta) to ``out``;
    ``references`` (:func:`probe_references`) adds a second table of reference rows."""
    if not rows:
        raise ValueError("write_probe_report got no rows.")
    lines = ["# Linear probe of vision features", "", *_probe_table(rows)]
    if references:
        lines += ["", "## References (same samples)", "", *_probe_table(probe_rows("reference", references))]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_probe_comparison(
    path_or_policy: Any,
    out: str | Path | None = None,
    *,
    n_train: int = 400,
    n_test: int = 200,
    seed: int = 0,
    image_size: int = 128,
) -> dict[str, Any]:
    """Before / after probe of a trained policy (object, checkpoint or training-run folder):
    the :func:`initial_backbone` against the policy's encoder, with :func:`probe_references`,
    all on the same samples. Returns ``{"before", "after", "references", "rows"}`` and, with
    ``out``, writes the markdown report there (what ``vlaworks probe`` prints)."""
    policy = load_policy(path_or_policy)
    train, test = train_test_samples(n_train, n_test, seed, image_size)
    before = probe_backbone(initial_backbone(policy), train, test)
    after = probe_backbone(policy, train, test)
    references = probe_references(train, test)
    rows = compare_probes(before, after)
    if out is not None:
        write_probe_report(rows, out, references)
    return {"before": before, "after": after, "references": references, "rows": rows}

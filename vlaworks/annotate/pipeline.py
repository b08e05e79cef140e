"""``vlaworks annotate``: seed 000's two-stage annotation pipeline over a whole dataset.

Per episode: key frame and gripper-aware region proposal (:mod:`.proposal`), target
phrase (:mod:`.phrase`), target mask inside the proposal (:mod:`.segment`), confidence
filtering, and visual prompts from the mask (:mod:`.prompts`). The output is a copy of
the dataset (files copied byte for byte, videos never re-encoded) plus
``meta/annotations.parquet`` (:mod:`vlaworks.data.annotations`), written atomically like
every dataset: built in a hidden sibling folder and renamed into place, replacing only a
dataset (with ``overwrite``) or an empty folder.

When the dataset has the world's ground truth (``vlaworks generate --segmentation``), the
report gives each mask's IoU against the true target mask at the key frame.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlaworks.annotate.phrase import PhraseExtractor, phrase_extractor
from vlaworks.annotate.prompts import derive_prompts
from vlaworks.annotate.proposal import (
    GRIPPER_ID,
    GRIPPER_SOURCES,
    key_frame,
    motion_gripper_mask,
    propose,
)
from vlaworks.annotate.segment import Segmenter, SegmentRequest, make_segmenter
from vlaworks.data import layout
from vlaworks.data.annotations import EpisodeAnnotation, write_annotations
from vlaworks.data.lerobot import (
    DATASET_ENTRIES,
    LeRobotDataset,
    check_replaceable,
    clean_stale_writes,
    install_dataset,
    writing_folder,
)

#: discard reasons, as stored in the annotations and counted in the report
NO_KEY_FRAME = "gripper never closes"
NO_GRIPPER = "no gripper found at the key frame"
EMPTY_MASK = "empty mask"
LOW_CONFIDENCE = "confidence below threshold"
FILLS_PROPOSAL = "mask fills the proposal"


@dataclass(frozen=True)
class AnnotateSettings:
    """Options of one annotation run (stored as provenance in the annotations file).

    ``gripper``: ``auto`` (the world's segmentation when the dataset has it, else
    ``motion``), ``oracle`` or ``motion``. ``margin``: proposal growth per side as a
    fraction of the image's longer side. A mask is discarded when its confidence is below
    ``min_confidence`` or it covers more than ``max_fill`` of the proposal (a segmenter
    returning the whole box has found nothing).
    """

    backend: str = "classical"
    camera: str = "base"
    margin: float = 0.1
    gripper: str = "auto"
    phrase: str = "rules"
    points: int = 3
    min_confidence: float = 0.3
    max_fill: float = 0.9
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.gripper not in ("auto", *GRIPPER_SOURCES):
            raise ValueError(f"--gripper must be auto, oracle or motion; got {self.gripper!r}.")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"--margin must be in [0, 1] (a fraction of the image side); got {self.margin}.")
        if self.points < 1:
            raise ValueError(f"--points must be >= 1; got {self.points}.")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence must be in [0, 1]; got {self.min_confidence}.")
        if not 0.0 < self.max_fill <= 1.0:
            raise ValueError(f"--max-fill must be in (0, 1]; got {self.max_fill}.")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass(frozen=True)
class Labelled:
    """One episode's annotation and, when the dataset has ground truth, the mask's IoU
    against it and the fraction of the true target's pixels inside the proposal."""

    annotation: EpisodeAnnotation
    iou: float | None = None
    recall: float | None = None


@dataclass(frozen=True)
class Labeller:
    """Everything that annotates one episode, resolved against one dataset."""

    camera_key: str
    camera: str
    gripper: str
    segment_key: str | None  # ground-truth segmentation of the camera, when the dataset has it
    segmenter: Segmenter
    extract_phrase: PhraseExtractor
    settings: AnnotateSettings

    def __call__(self, index: int, episode: dict[str, Any]) -> Labelled:
        """Annotate episode ``index``.

        ``episode`` is :meth:`LeRobotDataset.episode`'s dict of per-frame arrays.
        """
        s = self.settings
        frames = episode[self.camera_key]
        height, width = frames.shape[1:3]
        empty = np.zeros((height, width), dtype=np.uint8)
        phrase = self.extract_phrase(episode["task"])
        base = {
            "episode_index": index,
            "backend": self.segmenter.name,
            "camera": self.camera,
            "phrase": phrase,
        }
        key = key_frame(episode["action"])
        if key is None:
            return Labelled(
                EpisodeAnnotation(**base, valid=False, key_frame=-1, mask=empty, reason=NO_KEY_FRAME)
            )
        truth = None
        if self.segment_key is not None:
            segmentation = episode[self.segment_key][key]
            truth = segmentation == episode[layout.TARGET_SEGMENT_KEY][key]
        if self.gripper == "oracle":
            gripper = episode[self.segment_key][key] == GRIPPER_ID
        else:
            gripper = motion_gripper_mask(frames, key)
        proposal = propose(gripper, key, s.margin)
        if proposal is None:
            annotation = EpisodeAnnotation(**base, valid=False, key_frame=key, mask=empty, reason=NO_GRIPPER)
            return Labelled(annotation, iou=0.0 if truth is not None else None)
        result = self.segmenter(SegmentRequest(frames[key], phrase, proposal.box, gripper, truth))
        mask = np.asarray(result.mask, dtype=bool)
        iou = recall = None
        if truth is not None:
            iou = mask_iou(mask, truth)
            recall = float(truth[proposal.box.region(height, width)].sum() / max(truth.sum(), 1))
        box = proposal.box
        fill = mask.sum() / max((box.x1 - box.x0) * (box.y1 - box.y0), 1)
        reason = discard_reason(mask, result.confidence, fill, s)
        common = {
            **base,
            "key_frame": key,
            "mask": mask.astype(np.uint8),
            "confidence": float(np.clip(result.confidence, 0.0, 1.0)),
            "proposal": box.normalised(height, width),
        }
        if reason:
            return Labelled(EpisodeAnnotation(**common, valid=False, reason=reason), iou, recall)
        prompts = derive_prompts(mask, s.points, np.random.default_rng([s.seed, index]))
        annotation = EpisodeAnnotation(
            **common, valid=True, box=prompts.box, line=prompts.line, points=prompts.points
        )
        return Labelled(annotation, iou, recall)


def discard_reason(mask: np.ndarray, confidence: float, fill: float, settings: AnnotateSettings) -> str:
    """Why a mask is not kept ("" when it is): empty, unsure, or flooding its proposal."""
    if not mask.any():
        return EMPTY_MASK
    if confidence < settings.min_confidence:
        return LOW_CONFIDENCE
    if fill > settings.max_fill:
        return FILLS_PROPOSAL
    return ""


def make_labeller(ds: LeRobotDataset, settings: AnnotateSettings) -> Labeller:
    """Check ``settings`` against the dataset and build the segmenter and phrase extractor."""
    camera_key = ds.camera_key(settings.camera)
    camera = camera_key.removeprefix(layout.IMAGE_PREFIX)
    if "action" not in ds.features:
        raise ValueError(
            f"{ds.root} has no 'action' feature; the key frame is found from the gripper command."
        )
    segment_key = layout.SEGMENTATION_PREFIX + camera
    has_truth = segment_key in ds.features and layout.TARGET_SEGMENT_KEY in ds.features
    gripper = settings.gripper if settings.gripper != "auto" else ("oracle" if has_truth else "motion")
    if not has_truth and (gripper == "oracle" or settings.backend == "oracle"):
        raise ValueError(
            f"{ds.root} has no ground-truth segmentation for camera {camera!r}, which "
            f"{'--backend oracle' if settings.backend == 'oracle' else '--gripper oracle'} needs; make the "
            "dataset with `vlaworks generate --segmentation`, or use --backend classical --gripper motion."
        )
    return Labeller(
        camera_key=camera_key,
        camera=camera,
        gripper=gripper,
        segment_key=segment_key if has_truth else None,
        segmenter=make_segmenter(settings.backend, device=settings.device),
        extract_phrase=phrase_extractor(settings.phrase),
        settings=settings,
    )


def copy_dataset(source: Path, target: Path) -> None:
    """Copy the dataset entries of ``source`` into the new folder ``target``, byte for byte."""
    target.mkdir()
    for entry in sorted(source.iterdir()):
        if entry.name not in DATASET_ENTRIES:
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        else:
            shutil.copy2(entry, target / entry.name)


def annotate_dataset(
    data: Path, out: Path, settings: AnnotateSettings | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Write an annotated copy of ``data`` to ``out``; returns the report (see :func:`report_markdown`)."""
    settings = settings or AnnotateSettings()
    data, out = Path(data), Path(out)
    if out.resolve() == data.resolve():
        raise ValueError(
            f"--out must be a new folder, not the dataset itself ({data}); choose another --out."
        )
    ds = LeRobotDataset(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_writes(out.parent)
    check_replaceable(out, overwrite)  # fail before the slow part
    labeller = make_labeller(ds, settings)
    start = time.perf_counter()
    results = [labeller(i, ds.episode(i)) for i in sorted(int(ep["episode_index"]) for ep in ds.episodes)]
    seconds = time.perf_counter() - start
    tmp = writing_folder(out)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        copy_dataset(data, tmp)
        provenance = dataclasses.asdict(settings) | {"gripper": labeller.gripper, "source": str(data)}
        write_annotations(tmp, [r.annotation for r in results], settings=provenance)
        install_dataset(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summarize(results, seconds, labeller, out)


def summarize(results: list[Labelled], seconds: float, labeller: Labeller, out: Path) -> dict[str, Any]:
    """The run's report: counts, discard reasons, IoU against ground truth, throughput.

    IoU means are over episodes with ground truth: ``iou_kept`` over the kept ones,
    ``iou_segmented`` over all that reached segmentation or lacked a gripper (those count 0).
    """
    annotations = [r.annotation for r in results]
    reasons: dict[str, int] = {}
    for a in annotations:
        if not a.valid:
            reasons[a.reason] = reasons.get(a.reason, 0) + 1
    kept = sum(a.valid for a in annotations)
    kept_ious = [r.iou for r in results if r.iou is not None and r.annotation.valid]
    all_ious = [r.iou for r in results if r.iou is not None]
    recalls = [r.recall for r in results if r.recall is not None]

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "out": str(out),
        "backend": labeller.segmenter.name,
        "gripper": labeller.gripper,
        "camera": labeller.camera,
        "episodes": len(annotations),
        "kept": kept,
        "kept_fraction": kept / len(annotations),
        "reasons": reasons,
        "target_in_proposal": mean(recalls),
        "iou_kept": mean(kept_ious),
        "iou_kept_over_half": mean([float(iou >= 0.5) for iou in kept_ious]),
        "iou_segmented": mean(all_ious),
        "seconds": seconds,
        "episodes_per_s": len(annotations) / max(seconds, 1e-9),
    }


def _number(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table plus the discard reasons."""
    lines = [
        "| backend | gripper | episodes | kept | target in proposal | mean IoU (kept) "
        "| kept with IoU >= 0.5 | mean IoU (all) | episodes/s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {report['backend']} | {report['gripper']} | {report['episodes']} | {report['kept']} "
        f"({report['kept_fraction']:.1%}) | {_number(report['target_in_proposal'], percent=True)} "
        f"| {_number(report['iou_kept'])} | {_number(report['iou_kept_over_half'], percent=True)} "
        f"| {_number(report['iou_segmented'])} | {report['episodes_per_s']:.2f} |",
    ]
    if report["reasons"]:
        discarded = ", ".join(f"{reason}: {n}" for reason, n in sorted(report["reasons"].items()))
        lines += ["", f"Discarded: {discarded}."]
    return "\n".join(lines) + "\n"

"""Per-episode PixelVLA annotations of a dataset: the on-disk schema, its writer and reader.

``vlaworks annotate`` (seed 000's two-stage pipeline) labels each episode once, at its key
frame ``G`` (the first frame whose gripper command closes): the target object's mask on
one camera, the phrase naming it, the gripper-aware region proposal it was searched in,
and visual prompts derived from the mask. Policies read them with
:func:`read_annotations` and turn one :class:`EpisodeAnnotation` into ``Batch.pixel_masks``
(:meth:`EpisodeAnnotation.pixel_mask`) and ``Batch.visual_prompts``
(:meth:`EpisodeAnnotation.visual_prompts`).

Storage
-------
One file, ``meta/annotations.parquet`` inside the dataset folder, one row per episode of
the dataset (kept *and* discarded ones), sorted by ``episode_index``. It is a sidecar
rather than per-frame features because an annotation exists once per episode: a per-frame
mask column would repeat the key-frame mask ``T`` times, and LeRobot's own tooling
ignores extra files under ``meta/``. Columns (exact arrow types):

=================  ==================================  ===========================================
column             type                                meaning
=================  ==================================  ===========================================
``episode_index``  int64                               episode of the dataset
``valid``          bool                                False: discarded, do not train on it
``reason``         string                              why it was discarded ("" when valid)
``backend``        string                              segmenter that made the mask (``oracle``,
                                                       ``classical``, ``sam:...``, ...)
``camera``         string                              short camera name (``base``)
``key_frame``      int64                               frame index ``G`` in the episode; -1 if the
                                                       gripper never closes
``phrase``         string                              target-object phrase from the instruction
``proposal``       fixed_size_list<float32>[4], null   region proposal ``[x0, y0, x1, y1]``
``box``            fixed_size_list<float32>[4], null   the mask's bounding box ``[x0, y0, x1, y1]``
``line``           fixed_size_list<float32>[4], null   a segment inside the object ``[x0, y0, x1,
                                                       y1]``
``points``         list<fixed_size_list<float32>[2]>   K points ``[x, y]`` inside the mask
``confidence``     float32                             segmenter's confidence in [0, 1]
``mask_height``    int32                               mask rows (the camera's image height)
``mask_width``     int32                               mask columns (the camera's image width)
``mask``           binary                              ``uint8 [H, W]`` row-major, 1 = target,
                                                       raw bytes (lossless; zstd in the file)
=================  ==================================  ===========================================

The file's schema metadata key ``vlaworks.annotations`` holds JSON
``{"version": 1, "settings": {...}}``: the pipeline settings that produced it.

Coordinates are normalised image coordinates as in :mod:`vlaworks.batch` (0..1, x to the
right, y down). Pixel ``(row r, column c)`` has centre ``((c + 0.5) / W, (r + 0.5) / H)``;
a box spans pixel edges, ``x0 = c_min / W`` to ``x1 = (c_max + 1) / W``. A discarded
episode keeps what the pipeline got before failing (its proposal, a possibly empty mask)
and has no box, line or points.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlaworks.batch import PromptKind, VisualPrompt
from vlaworks.data.lerobot import DatasetError

ANNOTATIONS_PATH = "meta/annotations.parquet"
SCHEMA_VERSION = 1
METADATA_KEY = b"vlaworks.annotations"

Point = tuple[float, float]
Box = tuple[float, float, float, float]

_BOX4 = pa.list_(pa.float32(), 4)
SCHEMA = pa.schema(
    [
        ("episode_index", pa.int64()),
        ("valid", pa.bool_()),
        ("reason", pa.string()),
        ("backend", pa.string()),
        ("camera", pa.string()),
        ("key_frame", pa.int64()),
        ("phrase", pa.string()),
        ("proposal", _BOX4),
        ("box", _BOX4),
        ("line", _BOX4),
        ("points", pa.list_(pa.list_(pa.float32(), 2))),
        ("confidence", pa.float32()),
        ("mask_height", pa.int32()),
        ("mask_width", pa.int32()),
        ("mask", pa.binary()),
    ]
)


def _check_box(name: str, box: Box | None, episode: int) -> None:
    if box is None:
        return
    if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[0] > box[2] or box[1] > box[3]:
        raise ValueError(
            f"Episode {episode}: {name} must be [x0, y0, x1, y1] in 0..1 with x0 <= x1, y0 <= y1; got {box}."
        )


@dataclass(frozen=True)
class EpisodeAnnotation:
    """One episode's annotation (see the module docstring for the meaning of each field).

    ``mask`` is ``uint8 [H, W]`` with values 0 / 1; ``line`` is ``((x0, y0), (x1, y1))``.
    A valid annotation has a non-empty mask, a box, a line and at least one point.
    """

    episode_index: int
    valid: bool
    backend: str
    camera: str
    key_frame: int
    phrase: str
    mask: np.ndarray
    confidence: float = 0.0
    proposal: Box | None = None
    box: Box | None = None
    line: tuple[Point, Point] | None = None
    points: tuple[Point, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        ep = self.episode_index
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.dtype != np.uint8 or mask.size == 0 or mask.max(initial=0) > 1:
            raise ValueError(
                f"Episode {ep}: mask must be a non-empty uint8 [H, W] array of 0 / 1; got {mask.dtype} "
                f"{list(mask.shape)} with max {mask.max(initial=0) if mask.size else None}."
            )
        _check_box("proposal", self.proposal, ep)
        _check_box("box", self.box, ep)
        coords = [*self.points, *(self.line or ())]
        if any(len(p) != 2 or not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0) for p in coords):
            raise ValueError(f"Episode {ep}: points and line ends must be (x, y) in 0..1; got {coords}.")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Episode {ep}: confidence must be in [0, 1]; got {self.confidence}.")
        if self.valid and (not mask.any() or self.box is None or self.line is None or not self.points):
            raise ValueError(
                f"Episode {ep}: a valid annotation needs a non-empty mask, a box, a line and points; "
                "mark it valid=False with a reason instead."
            )
        if not self.valid and not self.reason:
            raise ValueError(f"Episode {ep}: a discarded annotation (valid=False) must say why in 'reason'.")

    def pixel_mask(self) -> np.ndarray:
        """The target mask as ``bool [H, W]`` (one view of ``Batch.pixel_masks``)."""
        return np.asarray(self.mask, dtype=bool)

    def visual_prompts(
        self, view: int = 0, kinds: Iterable[PromptKind] = ("point", "line", "box", "mask")
    ) -> list[VisualPrompt]:
        """``Batch.visual_prompts`` entries for this episode on camera view ``view``.

        One ``point`` prompt per stored point, then the line, the box and the mask, in that
        order, restricted to ``kinds``. A discarded annotation gives no prompts.
        """
        import torch

        if not self.valid:
            return []
        wanted = set(kinds)
        unknown = wanted - {"point", "line", "box", "mask"}
        if unknown:
            raise ValueError(f"Unknown prompt kinds {sorted(unknown)}; choose from point, line, box, mask.")
        prompts: list[VisualPrompt] = []
        if "point" in wanted:
            prompts += [VisualPrompt("point", view, (p,)) for p in self.points]
        if "line" in wanted and self.line is not None:
            prompts.append(VisualPrompt("line", view, tuple(self.line)))
        if "box" in wanted and self.box is not None:
            x0, y0, x1, y1 = self.box
            prompts.append(VisualPrompt("box", view, ((x0, y0), (x1, y1))))
        if "mask" in wanted:
            prompts.append(VisualPrompt("mask", view, (), torch.from_numpy(self.pixel_mask())))
        return prompts


def _row(a: EpisodeAnnotation) -> dict[str, Any]:
    mask = np.ascontiguousarray(a.mask, dtype=np.uint8)
    return {
        "episode_index": int(a.episode_index),
        "valid": bool(a.valid),
        "reason": a.reason,
        "backend": a.backend,
        "camera": a.camera,
        "key_frame": int(a.key_frame),
        "phrase": a.phrase,
        "proposal": list(a.proposal) if a.proposal is not None else None,
        "box": list(a.box) if a.box is not None else None,
        "line": [*a.line[0], *a.line[1]] if a.line is not None else None,
        "points": [list(p) for p in a.points],
        "confidence": float(a.confidence),
        "mask_height": mask.shape[0],
        "mask_width": mask.shape[1],
        "mask": mask.tobytes(),
    }


def write_annotations(
    root: Path, annotations: Iterable[EpisodeAnnotation], settings: dict[str, Any] | None = None
) -> Path:
    """Write ``annotations`` to ``root/meta/annotations.parquet`` atomically; returns the path.

    ``root`` is a dataset folder (or a writer's temporary one); ``settings`` (JSON-able) is
    stored in the file's metadata as provenance. Episode indexes must be unique.
    """
    items = sorted(annotations, key=lambda a: a.episode_index)
    indexes = [a.episode_index for a in items]
    if len(set(indexes)) != len(indexes):
        dupes = sorted({i for i in indexes if indexes.count(i) > 1})
        raise ValueError(f"Annotations repeat episode indexes {dupes}; write one annotation per episode.")
    meta = json.dumps({"version": SCHEMA_VERSION, "settings": settings or {}})
    table = pa.Table.from_pylist([_row(a) for a in items], schema=SCHEMA.with_metadata({METADATA_KEY: meta}))
    path = Path(root) / ANNOTATIONS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.writing-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def _box(values: list[float] | None) -> Box | None:
    return None if values is None else (values[0], values[1], values[2], values[3])


def read_annotations(root: Path) -> dict[int, EpisodeAnnotation]:
    """All annotations of the dataset at ``root``, by episode index (discarded ones included;
    check ``valid``)."""
    path = Path(root) / ANNOTATIONS_PATH
    if not path.is_file():
        raise DatasetError(
            f"{root} has no annotations ({ANNOTATIONS_PATH} is missing); make an annotated copy with "
            f"`vlaworks annotate {root} --out ANNOTATED`."
        )
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"Could not parse {path}: {err}. Rerun `vlaworks annotate`.") from err
    version = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}")).get("version")
    if version != SCHEMA_VERSION:
        raise DatasetError(
            f"{path} has annotation schema version {version}; this vlaworks reads version {SCHEMA_VERSION}. "
            "Rerun `vlaworks annotate` to rewrite it."
        )
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise DatasetError(f"{path} lacks columns {missing}; rerun `vlaworks annotate` to rewrite it.")
    out: dict[int, EpisodeAnnotation] = {}
    for row in table.to_pylist():
        shape = (row["mask_height"], row["mask_width"])
        mask = np.frombuffer(row["mask"], dtype=np.uint8)
        if mask.size != shape[0] * shape[1]:
            raise DatasetError(
                f"{path}: episode {row['episode_index']}'s mask holds {mask.size} bytes for shape "
                f"{list(shape)}; the file is corrupt. Rerun `vlaworks annotate`."
            )
        line = row["line"]
        out[row["episode_index"]] = EpisodeAnnotation(
            episode_index=row["episode_index"],
            valid=row["valid"],
            backend=row["backend"],
            camera=row["camera"],
            key_frame=row["key_frame"],
            phrase=row["phrase"],
            mask=mask.reshape(shape).copy(),
            confidence=row["confidence"],
            proposal=_box(row["proposal"]),
            box=_box(row["box"]),
            line=None if line is None else ((line[0], line[1]), (line[2], line[3])),
            points=tuple((p[0], p[1]) for p in row["points"]),
            reason=row["reason"],
        )
    return out

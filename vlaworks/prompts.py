"""Prompt modes: which visual prompt accompanies the instruction (PixelVLA, seed 000).

A PixelVLA policy reads the instruction plus, per episode, the target object's visual
prompt. Observations carry prompts as a user gives them, on a named camera:

* ``obs["visual_prompts"]``: a list of :class:`CameraPrompt` (point, line, box or mask) for
  the visual prompt-aware encoder;
* ``obs["pixel_masks"]``: ``{camera: bool [H, W]}``, the pixel-aware mask input ``p`` of
  Eq. 3 (the multiscale pixel-aware encoder).

A prompt mode names what an episode gets (the instruction is always given):

=============  =================================================================
``text``       nothing visual (both encoders see their "empty" input)
``point``      one point inside the target (the mask pixel nearest its centroid)
``line``       the target's principal-axis segment, end points inside the mask
``box``        the target's bounding box (top-left, bottom-right corners)
``mask``       the target's mask as a (dense) visual prompt
``text+mask``  the target's mask as the pixel-aware input ``p``, no visual prompt
=============  =================================================================

:func:`prompt_inputs` derives a mode's entries from a ground-truth mask (the tabletop
world does at evaluation); training windows take theirs from the dataset's annotations
(``vlaworks.processing``), where ``mixed`` draws one mode per window. Coordinates are
normalised to the image (0..1, x to the right, y down) and so survive resizing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from vlaworks.batch import PromptKind

PromptMode = Literal["text", "point", "line", "box", "mask", "text+mask"]
#: every mode an episode can be prompted with
PROMPT_MODES: tuple[str, ...] = get_args(PromptMode)
#: training's prompt mode: one of :data:`PROMPT_MODES`, or ``mixed`` (one drawn per window)
TrainPromptMode = Literal["text", "point", "line", "box", "mask", "text+mask", "mixed"]
#: observation keys of the prompts
VISUAL_PROMPTS_KEY = "visual_prompts"
PIXEL_MASKS_KEY = "pixel_masks"


@dataclass(frozen=True)
class CameraPrompt:
    """A visual prompt on a named camera: ``coords`` (normalised ``(x, y)``) of a point
    (one), a line's end points or a box's corners (two); ``mask`` (bool ``[H, W]``) for a
    mask prompt."""

    kind: PromptKind
    camera: str
    coords: tuple[tuple[float, float], ...] = ()
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        wanted = {"point": 1, "line": 2, "box": 2, "mask": 0}
        if self.kind not in wanted:
            raise ValueError(f"Unknown visual prompt kind {self.kind!r}; use point, line, box or mask.")
        if len(self.coords) != wanted[self.kind]:
            raise ValueError(
                f"A {self.kind} prompt takes {wanted[self.kind]} (x, y) coordinates; got {self.coords}."
            )
        if (self.kind == "mask") != (self.mask is not None):
            raise ValueError("A mask prompt carries mask (bool [H, W]) and other kinds none.")


def check_prompt_mode(mode: str, *, training: bool = False) -> str:
    """``mode`` if it is a prompt mode (with ``training``, ``mixed`` too), else a one-line error."""
    known = (*PROMPT_MODES, "mixed") if training else PROMPT_MODES
    if mode not in known:
        raise ValueError(f"Unknown prompt mode {mode!r}; use one of {', '.join(known)}.")
    return mode


def _pixels(mask: np.ndarray) -> np.ndarray:
    """Normalised centres ``[N, 2]`` (x, y) of the pixels of a non-empty bool mask ``[H, W]``."""
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return np.stack([(cols + 0.5) / w, (rows + 0.5) / h], axis=1)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    return (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))


def mask_prompt(kind: PromptKind, mask: np.ndarray, camera: str) -> CameraPrompt:
    """The deterministic ``kind`` prompt of a non-empty target ``mask`` (see the module table)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("The target mask is empty; it gives no visual prompt (use prompt mode text).")
    if kind == "mask":
        return CameraPrompt("mask", camera, mask=mask)
    points = _pixels(mask)
    if kind == "point":
        nearest = points[np.argmin(((points - points.mean(0)) ** 2).sum(1))]
        return CameraPrompt("point", camera, ((float(nearest[0]), float(nearest[1])),))
    if kind == "box":
        h, w = mask.shape
        rows, cols = np.nonzero(mask)
        corners = (
            np.array([cols.min() / w, rows.min() / h]),
            np.array([(cols.max() + 1) / w, (rows.max() + 1) / h]),
        )
        return CameraPrompt("box", camera, _pair(*corners))
    if kind == "line":
        centred = points - points.mean(0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0] if len(points) > 1 else np.array([1.0, 0.0])
        along = centred @ axis
        return CameraPrompt("line", camera, _pair(points[np.argmin(along)], points[np.argmax(along)]))
    raise ValueError(f"Unknown visual prompt kind {kind!r}; use point, line, box or mask.")


def prompt_inputs(mode: str, mask: np.ndarray, camera: str) -> dict[str, Any]:
    """The observation entries of prompt ``mode`` for the target's ground-truth ``mask`` on
    ``camera``: none for ``text`` or an empty mask (the target out of view)."""
    check_prompt_mode(mode)
    mask = np.asarray(mask, dtype=bool)
    if mode == "text" or not mask.any():
        return {}
    if mode == "text+mask":
        return {PIXEL_MASKS_KEY: {camera: mask}}
    return {VISUAL_PROMPTS_KEY: [mask_prompt(mode, mask, camera)]}

"""The one processor between the world and the policy: observations -> Batch -> env actions.

A :class:`PolicyProcessor` is built from a :class:`~vlaworks.models.config.PolicyConfig`
and the dataset's :class:`~vlaworks.data.normalize.Normalizer` and is the only code that

* turns an observation into a batch row: the configured cameras in order, each view
  resized to ``image_size`` square (antialiased bilinear, uint8 kept), the instruction as
  the prompt, the proprio state normalised (``use_state``), training-time augmentation
  when asked (:mod:`vlaworks.data.augment`: images, and instructions reworded by
  :mod:`vlaworks.data.instructions`; never at inference);
* turns a recorded action sequence into the training target at frame ``t``: the
  normalised chunk ``a[t : t + chunk]``, padded past the episode end by repeating the last
  real action (a policy executing a whole chunk then holds the final command, e.g. the
  gripper stays closed) with ``action_mask`` False on the padding so losses ignore it;
* lays out a vision-language sample (one image) for a multi-camera policy: the image in
  view 0 (the base view) and black other views (see ``vlaworks.data.vl``);
* turns a predicted normalised chunk back into env-unit actions (unnormalise);
* for a PixelVLA policy (a ``pixel_aware`` / ``visual_prompt`` token source), turns the
  prompts an observation carries (:mod:`vlaworks.prompts`: ``obs["pixel_masks"]``,
  ``obs["visual_prompts"]`` on named cameras) into ``Batch.pixel_masks`` (bool
  ``[V, S, S]``, empty views all False) and ``Batch.visual_prompts`` (view indices,
  masks resized), moved with the random shift at training; an observation without prompts
  is a text-only row. Training windows get theirs from the episode's annotation
  (:meth:`PolicyProcessor.annotation_inputs`, per ``PolicyConfig.prompt_mode``);
* for a policy with a target-mask loss (``seg_mask``, ``PolicyConfig.reads_target_masks``),
  turns ``obs["target_masks"]`` (``{camera: bool [H, W]}``, the manipulation target's
  ground-truth mask, which training windows take from the world's segmentation) into
  ``Batch.target_masks`` (bool ``[V, S, S]``, moved with the random shift); live
  observations carry none and make rows without them (the loss is training-only).

Training windows (``vlaworks.data.dataset.WindowDataset``), VL data, ``predict_chunk``,
VQA, offline evaluation and the policy server all go through it, so a frame seen in
training and the same frame seen live become identical tensors. :func:`collate` stacks
rows of either kind into a :class:`~vlaworks.batch.Batch`.

The processor is saved beside the policy (``processor.json``; the statistics stay in
``normalizer.json``) so a client can prepare observations without building the model.

Observations are dicts ``{"images": {camera: uint8 [H, W, 3]}, "instruction": str,
"state": float [S]}`` (``vlaworks/envs/base.py``); ``state`` is read only with
``use_state``, the prompt entries only by policies that read prompts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from vlaworks.batch import Batch, VisualPrompt
from vlaworks.data.augment import AugmentOptions, Shift, augment_views, noisy_state
from vlaworks.data.instructions import augment_instruction
from vlaworks.data.normalize import Normalizer
from vlaworks.prompts import (
    PIXEL_MASKS_KEY,
    PROMPT_MODES,
    VISUAL_PROMPTS_KEY,
    CameraPrompt,
    check_prompt_mode,
)

if TYPE_CHECKING:
    from vlaworks.data.annotations import EpisodeAnnotation
    from vlaworks.models.config import PolicyConfig

ACTION_KEY = "action"
STATE_KEY = "observation.state"
#: the observation entry with the ground-truth target masks ``{camera: bool [H, W]}``
TARGET_MASKS_KEY = "target_masks"
#: the processor's file in a policy folder
PROCESSOR_FILE = "processor.json"


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``[..., 3, H, W]`` images to ``size`` x ``size`` (antialiased bilinear), uint8 out."""
    if images.shape[-2:] == (size, size):
        return images
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:]).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).reshape(*lead, 3, size, size)


def resize_mask(mask: Any, size: tuple[int, int]) -> torch.Tensor:
    """A bool ``[H, W]`` mask (array or tensor) at ``size``: a pixel is set when at least half
    of the area it covers is (nearest neighbour when enlarging)."""
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if m.ndim != 2:
        raise ValueError(f"Masks must be bool [H, W]; got shape {tuple(m.shape)}.")
    if tuple(m.shape) == tuple(size):
        return m
    return F.adaptive_avg_pool2d(m[None, None].float(), size)[0, 0] >= 0.5


def _chw(image: Any) -> torch.Tensor:
    """A uint8 ``[H, W, 3]`` array or tensor as a uint8 ``[3, H, W]`` tensor."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"Camera images must be uint8 [H, W, 3]; got shape {array.shape}.")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8)).permute(2, 0, 1)


#: processor settings saved only by policies that read prompts
_PROMPT_SETTINGS = ("prompt_mode", "pixel_masks", "visual_prompts")


class PolicyProcessor:
    """Observation -> batch row and normalised chunk -> env actions for one policy (module doc)."""

    def __init__(
        self,
        cameras: Sequence[str],
        *,
        image_size: int | None = None,
        chunk_size: int | None = None,
        use_state: bool = False,
        normalizer: Normalizer | None = None,
        augment: AugmentOptions | None = None,
        prompt_mode: str | None = None,
        pixel_masks: bool = False,
        visual_prompts: bool = False,
        target_masks: bool = False,
    ) -> None:
        if not cameras:
            raise ValueError("A processor needs at least one camera, e.g. cameras=('base',).")
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be >= 1 pixel; got {image_size}.")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1; got {chunk_size}.")
        self.cameras = tuple(str(c) for c in cameras)
        self.image_size = image_size
        self.chunk_size = chunk_size
        self.use_state = bool(use_state)
        self.normalizer = normalizer
        self.augment = augment if augment is not None and augment.enabled else None
        if (prompt_mode is None) == (pixel_masks or visual_prompts):
            raise ValueError(
                "A processor reads prompts (pixel_masks / visual_prompts) exactly when it has a "
                f"prompt_mode; got prompt_mode={prompt_mode!r}, pixel_masks={pixel_masks}, "
                f"visual_prompts={visual_prompts}."
            )
        #: how training windows draw prompts from annotations (None: the policy reads no prompts)
        self.prompt_mode = check_prompt_mode(prompt_mode, training=True) if prompt_mode is not None else None
        self.reads_pixel_masks = bool(pixel_masks)
        self.reads_visual_prompts = bool(visual_prompts)
        #: whether rows carry the ground-truth target masks observations hold (target-mask losses)
        self.reads_target_masks = bool(target_masks)

    @classmethod
    def from_config(cls, config: PolicyConfig, normalizer: Normalizer | None = None) -> PolicyProcessor:
        """The processor of a policy built from ``config`` with the dataset's ``normalizer``."""
        return cls(
            config.cameras,
            image_size=config.image_size,
            chunk_size=config.chunk_size,
            use_state=config.use_state,
            normalizer=normalizer,
            augment=config.augment,
            prompt_mode=config.prompt_mode,
            pixel_masks="pixel_aware" in config.prompt_sources,
            visual_prompts="visual_prompt" in config.prompt_sources,
            target_masks=config.reads_target_masks,
        )

    # --- observation side ----------------------------------------------------------------------
    def images(self, views: Mapping[str, Any]) -> torch.Tensor:
        """The configured cameras' views, in order, as uint8 ``[V, 3, S, S]``."""
        missing = [c for c in self.cameras if c not in views]
        if missing:
            raise KeyError(
                f"Observation lacks camera(s) {missing}; it has {sorted(views)}. The policy reads "
                f"cameras {list(self.cameras)}."
            )
        frames = [_chw(views[c]) for c in self.cameras]
        if self.image_size is not None:
            frames = [resize_images(f, self.image_size) for f in frames]
        if len({tuple(f.shape) for f in frames}) > 1:
            raise ValueError(
                f"Cameras {list(self.cameras)} have different image sizes "
                f"{[tuple(f.shape) for f in frames]}; "
                "set image_size to resize them to a common square size."
            )
        return torch.stack(frames)

    def state(self, raw: Any) -> torch.Tensor:
        """The proprio state normalised with the policy's statistics, float32 ``[S]`` (unchanged
        without a normaliser)."""
        state = np.array(raw, dtype=np.float32)
        if self.normalizer is not None:
            state = np.asarray(self.normalizer.normalize(STATE_KEY, state), dtype=np.float32)
        return torch.from_numpy(state)

    def observation(self, obs: Mapping[str, Any], *, training: bool = False) -> dict[str, Any]:
        """One batch row from an observation: ``images``, ``instruction``, ``camera_names`` and,
        with ``use_state``, ``state``; ``pixel_masks`` / ``visual_prompts`` when the policy
        reads them, ``target_masks`` when it reads them and ``obs`` has them. ``training``
        applies the configured augmentation (a shift moves the prompts and masks with the views;
        the instruction is reworded with probability ``augment.instructions``; the normalised
        state gets noise of std ``augment.state_noise``)."""
        images = self.images(obs.get("images", {}))
        size = (int(images.shape[-2]), int(images.shape[-1]))
        masks = self.pixel_masks(obs.get(PIXEL_MASKS_KEY) or {}, size) if self.reads_pixel_masks else None
        prompts = (
            self.visual_prompts(obs.get(VISUAL_PROMPTS_KEY) or [], size)
            if self.reads_visual_prompts
            else None
        )
        targets = (
            self.pixel_masks(obs[TARGET_MASKS_KEY], size, "target mask")
            if self.reads_target_masks and obs.get(TARGET_MASKS_KEY) is not None
            else None
        )
        instruction = str(obs["instruction"])
        if training and self.augment is not None:
            shift = Shift.draw(len(self.cameras), self.augment.shift) if self.augment.shift > 0 else None
            images = augment_views(images, self.augment, shift)
            if shift is not None:
                masks = shift.masks(masks) if masks is not None else None
                prompts = [shift.prompt(p, size) for p in prompts] if prompts is not None else None
                targets = shift.masks(targets) if targets is not None else None
            # after the image draws, so enabling it leaves a run's image augmentation as it was
            instruction = augment_instruction(instruction, self.augment.instructions)
        row: dict[str, Any] = {
            "images": images,
            "instruction": instruction,
            "camera_names": self.cameras,
        }
        if self.use_state:
            if "state" not in obs:
                raise KeyError("The policy reads the proprio state but the observation has no 'state'.")
            row["state"] = self.state(obs["state"])
            if training and self.augment is not None:  # drawn last: other draws stay as they were
                row["state"] = noisy_state(row["state"], self.augment.state_noise)
        if masks is not None:
            row["pixel_masks"] = masks
        if prompts is not None:
            row["visual_prompts"] = prompts
        if targets is not None:
            row["target_masks"] = targets
        return row

    def _view(self, camera: str, what: str) -> int:
        if camera not in self.cameras:
            raise ValueError(
                f"The {what} is on camera {camera!r}, which the policy does not read (cameras "
                f"{list(self.cameras)}); give it on one of those."
            )
        return self.cameras.index(camera)

    def pixel_masks(
        self, masks: Mapping[str, Any], size: tuple[int, int], what: str = "pixel mask"
    ) -> torch.Tensor:
        """``{camera: bool [H, W]}`` -> bool ``[V, S, S]`` in camera order (absent views empty);
        ``what`` names the masks in errors."""
        out = torch.zeros((len(self.cameras), *size), dtype=torch.bool)
        for camera, mask in masks.items():
            out[self._view(camera, what)] = resize_mask(mask, size)
        return out

    def visual_prompts(self, prompts: Sequence[CameraPrompt], size: tuple[int, int]) -> list[VisualPrompt]:
        """Camera prompts -> the batch's :class:`~vlaworks.batch.VisualPrompt` (view index,
        mask at ``size``)."""
        return [
            VisualPrompt(
                p.kind,
                self._view(p.camera, "visual prompt"),
                tuple((float(x), float(y)) for x, y in p.coords),
                resize_mask(p.mask, size) if p.mask is not None else None,
            )
            for p in prompts
        ]

    def annotation_inputs(self, annotation: EpisodeAnnotation | None) -> dict[str, Any]:
        """The prompt entries a training window of an annotated episode carries, as
        :func:`vlaworks.prompts.prompt_inputs` gives them at evaluation: the mode is
        ``prompt_mode`` (``mixed``: one of :data:`~vlaworks.prompts.PROMPT_MODES` drawn per
        window), a point is one of the annotation's points drawn at random (seed 000 samples
        points inside the mask), the line and box are the annotation's, the masks its
        key-frame mask, used for every frame of the episode. A discarded (invalid) or absent
        annotation gives a text-only window. Draws use torch's global generator, which the
        sampler seeds per sample."""
        if self.prompt_mode is None:
            raise ValueError(
                "This processor reads no prompts; set policy.prompt_mode to train with annotations."
            )
        mode = self.prompt_mode
        if mode == "mixed":
            mode = PROMPT_MODES[int(torch.randint(len(PROMPT_MODES), ()))]
        if annotation is None or not annotation.valid or mode == "text":
            return {}
        camera = annotation.camera
        if mode == "text+mask":
            return {PIXEL_MASKS_KEY: {camera: annotation.pixel_mask()}}
        if mode == "point":
            prompt = CameraPrompt(
                "point", camera, (annotation.points[int(torch.randint(len(annotation.points), ()))],)
            )
        elif mode == "line":
            prompt = CameraPrompt("line", camera, annotation.line)
        elif mode == "box":
            x0, y0, x1, y1 = annotation.box
            prompt = CameraPrompt("box", camera, ((x0, y0), (x1, y1)))
        else:
            prompt = CameraPrompt("mask", camera, mask=annotation.pixel_mask())
        return {VISUAL_PROMPTS_KEY: [prompt]}

    def batch(self, observations: Sequence[Mapping[str, Any]]) -> Batch:
        """Env observations -> an inference :class:`Batch` (uint8 images, on the CPU)."""
        if not observations:
            raise ValueError("Got no observations; pass a list with one dict per env.")
        return collate([self.observation(obs) for obs in observations])

    def vision_language(
        self, image: Any, prompt: str, answer: str | None = None, kind: str = "vl"
    ) -> dict[str, Any]:
        """A vision-language row: ``image`` (uint8 ``[H, W, 3]``) in view 0, black other views,
        ``prompt`` as the instruction, and ``answer`` when training on it."""
        view = _chw(image)
        if self.image_size is not None:
            view = resize_images(view, self.image_size)
        views = torch.zeros((len(self.cameras), *view.shape), dtype=torch.uint8)
        views[0] = view
        row: dict[str, Any] = {
            "images": views,
            "instruction": str(prompt),
            "prompt": str(prompt),
            "kind": kind,
            "camera_names": self.cameras,
        }
        if answer is not None:
            row["answer"] = str(answer)
        return row

    # --- action side ---------------------------------------------------------------------------
    def action_windows(self, actions: np.ndarray) -> np.ndarray:
        """Every frame's raw target chunk of an episode: ``[T, chunk, D]`` from actions ``[T, D]``
        (past the end the last action repeats)."""
        chunk = self._chunk()
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"Episode actions must be a non-empty [T, D] array; got shape {actions.shape}.")
        padded = np.concatenate([actions, np.repeat(actions[-1:], chunk - 1, axis=0)])
        return padded[np.arange(len(actions))[:, None] + np.arange(chunk)[None]]

    def target(self, actions: np.ndarray, t: int) -> dict[str, torch.Tensor]:
        """The training target at frame ``t`` of an episode's actions ``[T, D]``: the
        normalised chunk (``actions``, float32 ``[chunk, D]``) and ``action_mask`` (bool ``[chunk]``)."""
        chunk = self._chunk()
        actions = np.asarray(actions, dtype=np.float32)
        stop = min(t + chunk, len(actions))
        window = actions[t:stop]
        if stop - t < chunk:
            window = np.concatenate([window, np.repeat(actions[-1:], chunk - (stop - t), axis=0)])
        return {
            "actions": torch.from_numpy(self.normalize_actions(window)),
            "action_mask": torch.from_numpy(np.arange(chunk) < stop - t),
        }

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Raw env actions (any leading shape, last dim D) -> the policy's normalised space
        (unchanged without a normaliser)."""
        actions = np.array(actions, dtype=np.float32)  # a copy: episode arrays may be read-only
        if self.normalizer is None:
            return actions
        return np.asarray(self.normalizer.normalize(ACTION_KEY, actions), dtype=np.float32)

    def env_actions(self, chunk: torch.Tensor) -> np.ndarray:
        """Predicted normalised chunks ``[B, T, D]`` -> raw env-unit actions (float32 numpy)."""
        raw = self._normalizer().unnormalize(ACTION_KEY, chunk.detach().float().cpu())
        return np.asarray(raw, dtype=np.float32)

    # --- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The processor's settings (statistics excluded: they live in ``normalizer.json``)."""
        return {
            "cameras": list(self.cameras),
            "image_size": self.image_size,
            "chunk_size": self.chunk_size,
            "use_state": self.use_state,
            "augment": asdict(self.augment) if self.augment is not None else None,
            **(
                {
                    "prompt_mode": self.prompt_mode,
                    "pixel_masks": self.reads_pixel_masks,
                    "visual_prompts": self.reads_visual_prompts,
                }
                if self.prompt_mode is not None
                else {}
            ),
            **({"target_masks": True} if self.reads_target_masks else {}),
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``processor.json`` into ``folder``."""
        path = Path(folder) / PROCESSOR_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], normalizer: Normalizer | None = None) -> PolicyProcessor:
        """Rebuild from :meth:`to_dict` output with the policy's ``normalizer``."""
        known = {"cameras", "image_size", "chunk_size", "use_state", "augment", "target_masks"}
        known |= set(_PROMPT_SETTINGS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown processor setting(s) {unknown}; known: {sorted(known)}.")
        augment = data.get("augment")
        return cls(
            data["cameras"],
            image_size=data.get("image_size"),
            chunk_size=data.get("chunk_size"),
            use_state=bool(data.get("use_state", False)),
            normalizer=normalizer,
            augment=AugmentOptions(**augment) if augment else None,
            prompt_mode=data.get("prompt_mode"),
            pixel_masks=bool(data.get("pixel_masks", False)),
            visual_prompts=bool(data.get("visual_prompts", False)),
            target_masks=bool(data.get("target_masks", False)),
        )

    def _normalizer(self) -> Normalizer:
        if self.normalizer is None:
            raise ValueError(
                "This processor has no normaliser: build the policy with the dataset's Normalizer or "
                "load a checkpoint (which stores normalizer.json)."
            )
        return self.normalizer

    def _chunk(self) -> int:
        if self.chunk_size is None:
            raise ValueError(
                "This processor has no chunk_size, so it makes no action targets; build it "
                "from the policy's config."
            )
        return self.chunk_size


def collate(rows: Sequence[Mapping[str, Any]]) -> Batch:
    """Stack processor rows (robot windows, observations or vision-language samples) into a
    :class:`Batch`. Vision-language rows fill ``vl_prompt`` (and ``vl_answer`` when they carry
    answers, making a VL training batch); rows with ``actions`` carry the target chunk and
    mask; ``episode_index`` / ``frame_index`` / ``kind`` go to ``Batch.meta``."""
    if not rows:
        raise ValueError("collate got an empty list of rows.")
    names = rows[0]["camera_names"]
    if any(r["camera_names"] != names for r in rows):
        raise ValueError("collate: rows come from different camera selections; use one processor.")
    first = rows[0]
    kinds = [
        {key in r for r in rows}
        for key in ("prompt", "answer", "actions", "state", "pixel_masks", "visual_prompts", "target_masks")
    ]
    if any(len(k) > 1 for k in kinds):
        raise ValueError(
            "collate: rows mix vision-language, robot, state-less, prompt-less or target-mask-less samples; "
            "batch them apart."
        )
    meta: dict[str, Any] = {}
    for key in ("episode_index", "frame_index"):
        if key in first:
            meta[key] = torch.tensor([r[key] for r in rows])
    if "kind" in first:
        meta["kind"] = [r["kind"] for r in rows]
    return Batch(
        images=torch.stack([r["images"] for r in rows]),
        instructions=[r["instruction"] for r in rows],
        camera_names=tuple(names),
        state=torch.stack([r["state"] for r in rows]) if "state" in first else None,
        actions=torch.stack([r["actions"] for r in rows]) if "actions" in first else None,
        action_mask=torch.stack([r["action_mask"] for r in rows]) if "actions" in first else None,
        pixel_masks=torch.stack([r["pixel_masks"] for r in rows]) if "pixel_masks" in first else None,
        visual_prompts=[r["visual_prompts"] for r in rows] if "visual_prompts" in first else None,
        target_masks=torch.stack([r["target_masks"] for r in rows]) if "target_masks" in first else None,
        vl_prompt=[r["prompt"] for r in rows] if "prompt" in first else None,
        vl_answer=[r["answer"] for r in rows] if "answer" in first else None,
        meta=meta,
    )

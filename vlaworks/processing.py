"""The one processor between the world and the policy: observations -> Batch -> env actions.

A :class:`PolicyProcessor` is built from a :class:`~vlaworks.models.config.PolicyConfig`
and the dataset's :class:`~vlaworks.data.normalize.Normalizer` and is the only code that

* turns an observation into a batch row: the configured cameras in order, each view
  resized to ``image_size`` square (antialiased bilinear, uint8 kept), the instruction as
  the prompt, the proprio state normalised (``use_state``), training-time augmentation
  when asked (:mod:`vlaworks.data.augment`; never at inference);
* turns a recorded action sequence into the training target at frame ``t``: the
  normalised chunk ``a[t : t + chunk]``, padded past the episode end by repeating the last
  real action (a policy executing a whole chunk then holds the final command, e.g. the
  gripper stays closed) with ``action_mask`` False on the padding so losses ignore it;
* lays out a vision-language sample (one image) for a multi-camera policy: the image in
  view 0 (the base view) and black other views (see ``vlaworks.data.vl``);
* turns a predicted normalised chunk back into env-unit actions (unnormalise).

Training windows (``vlaworks.data.dataset.WindowDataset``), VL data, ``predict_chunk``,
VQA, offline evaluation and the policy server all go through it, so a frame seen in
training and the same frame seen live become identical tensors. :func:`collate` stacks
rows of either kind into a :class:`~vlaworks.batch.Batch`.

The processor is saved beside the policy (``processor.json``; the statistics stay in
``normalizer.json``) so a client can prepare observations without building the model.

Observations are dicts ``{"images": {camera: uint8 [H, W, 3]}, "instruction": str,
"state": float [S]}`` (``vlaworks/envs/base.py``); ``state`` is read only with
``use_state``.
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

from vlaworks.batch import Batch
from vlaworks.data.augment import AugmentOptions, augment_views
from vlaworks.data.normalize import Normalizer

if TYPE_CHECKING:
    from vlaworks.models.config import PolicyConfig

ACTION_KEY = "action"
STATE_KEY = "observation.state"
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


def _chw(image: Any) -> torch.Tensor:
    """A uint8 ``[H, W, 3]`` array or tensor as a uint8 ``[3, H, W]`` tensor."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"Camera images must be uint8 [H, W, 3]; got shape {array.shape}.")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8)).permute(2, 0, 1)


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
        with ``use_state``, ``state``. ``training`` applies the configured augmentation."""
        images = self.images(obs.get("images", {}))
        if training and self.augment is not None:
            images = augment_views(images, self.augment)
        row: dict[str, Any] = {
            "images": images,
            "instruction": str(obs["instruction"]),
            "camera_names": self.cameras,
        }
        if self.use_state:
            if "state" not in obs:
                raise KeyError("The policy reads the proprio state but the observation has no 'state'.")
            row["state"] = self.state(obs["state"])
        return row

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
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``processor.json`` into ``folder``."""
        path = Path(folder) / PROCESSOR_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], normalizer: Normalizer | None = None) -> PolicyProcessor:
        """Rebuild from :meth:`to_dict` output with the policy's ``normalizer``."""
        known = {"cameras", "image_size", "chunk_size", "use_state", "augment"}
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
    kinds = [{key in r for r in rows} for key in ("prompt", "answer", "actions", "state")]
    if any(len(k) > 1 for k in kinds):
        raise ValueError("collate: rows mix vision-language, robot and state-less samples; batch them apart.")
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
        vl_prompt=[r["prompt"] for r in rows] if "prompt" in first else None,
        vl_answer=[r["answer"] for r in rows] if "answer" in first else None,
        meta=meta,
    )

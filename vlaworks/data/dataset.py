"""Training windows over a :class:`LeRobotDataset`.

One item is one frame ``t`` of one episode, made by the policy's
:class:`~vlaworks.processing.PolicyProcessor` exactly as a live observation is: the
chosen cameras' views (resized, augmented when the processor has augmentation), the
instruction, the normalised state, plus the normalised target chunk ``a[t : t + chunk]``
(padded past the episode end, masked in ``action_mask``). :func:`vlaworks.processing.collate`
stacks items into a :class:`~vlaworks.batch.Batch`. A policy that reads prompts (a
processor with a ``prompt_mode``) also gets each window's pixel masks and visual prompts
from the dataset's per-episode annotations (``meta/annotations.parquet``, written by
``vlaworks annotate``; :meth:`~vlaworks.processing.PolicyProcessor.annotation_inputs`).
A policy with a target-mask loss (a processor with ``reads_target_masks``, e.g. PokeVLA's
``seg_mask``) gets each frame's ground-truth mask of the manipulation target per camera:
the world's segmentation equal to the frame's target id (datasets made with
``vlaworks generate --segmentation``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from vlaworks.data.annotations import read_annotations
from vlaworks.data.layout import SEGMENTATION_PREFIX, TARGET_SEGMENT_KEY
from vlaworks.data.lerobot import DatasetError, LeRobotDataset
from vlaworks.processing import ACTION_KEY, STATE_KEY, TARGET_MASKS_KEY, PolicyProcessor


class WindowDataset(Dataset):
    """Torch dataset of training windows; see the module docstring.

    Items are dicts with ``images`` (uint8 ``[V, 3, H, W]``), ``instruction``, ``state``
    (float32 ``[S]``, only when the processor uses state), ``actions`` (float32
    ``[chunk, D]``), ``action_mask`` (bool ``[chunk]``), ``episode_index``, ``frame_index``
    and ``camera_names`` (plus ``pixel_masks`` / ``visual_prompts`` for a policy reading
    prompts, ``target_masks`` for one reading target masks). ``training`` applies the
    processor's augmentation (off for offline evaluation on held-out demonstrations).
    """

    def __init__(self, ds: LeRobotDataset, processor: PolicyProcessor, *, training: bool = True) -> None:
        if processor.chunk_size is None:
            raise ValueError("WindowDataset needs a processor with a chunk_size (the policy's).")
        self.ds = ds
        self.processor = processor
        self.training = training
        self.camera_keys = {name: ds.camera_key(name) for name in processor.cameras}
        needed = [ACTION_KEY] + ([STATE_KEY] if processor.use_state else [])
        absent = [k for k in needed if k not in ds.features]
        if absent:
            raise KeyError(f"Dataset {ds.root} has no {absent} feature(s); features: {sorted(ds.features)}.")
        normalizer = processor.normalizer
        if normalizer is not None:
            for key in normalizer.keys:
                if key in needed and int(np.prod(ds.features[key]["shape"])) != normalizer.dim(key):
                    raise ValueError(
                        f"Normalizer expects {normalizer.dim(key)} dimensions for {key!r} but dataset "
                        f"{ds.root} stores shape {ds.features[key]['shape']}; build the normaliser from "
                        "this dataset's stats."
                    )
        self.annotations = read_annotations(ds.root) if processor.prompt_mode is not None else None
        if self.annotations is not None:
            episodes, _ = ds.episode_bounds()
            absent = sorted({int(e) for e in episodes} - set(self.annotations))
            if absent:
                raise DatasetError(
                    f"{ds.root}'s annotations lack episodes {absent[:8]}; annotate the dataset again with "
                    "`vlaworks annotate`."
                )
        self.segment_keys = {name: SEGMENTATION_PREFIX + name for name in processor.cameras}
        if processor.reads_target_masks:
            absent = [k for k in [*self.segment_keys.values(), TARGET_SEGMENT_KEY] if k not in ds.features]
            if absent:
                raise DatasetError(
                    f"{ds.root} has no {absent}, from which the policy's target masks come; make the dataset "
                    "with `vlaworks generate --segmentation`."
                )

    @property
    def chunk(self) -> int:
        return int(self.processor.chunk_size)

    def __len__(self) -> int:
        return self.ds.num_frames

    def observation(self, episode: dict[str, Any], t: int) -> dict[str, Any]:
        """Frame ``t`` of a decoded episode as the env would observe it (raw images and state)."""
        task_index = episode.get("task_index")
        instruction = (
            self.ds.tasks.get(int(task_index[t]), episode["task"])
            if task_index is not None
            else episode["task"]
        )
        obs: dict[str, Any] = {
            "images": {name: episode[key][t] for name, key in self.camera_keys.items()},
            "instruction": instruction,
        }
        if self.processor.use_state:
            obs["state"] = episode[STATE_KEY][t]
        if self.processor.reads_target_masks:
            target = episode[TARGET_SEGMENT_KEY][t]
            obs[TARGET_MASKS_KEY] = {
                name: episode[key][t] == target for name, key in self.segment_keys.items()
            }
        return obs

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode_index, t = self.ds.locate(int(index))
        ep = self.ds.episode(episode_index)
        obs = self.observation(ep, t)
        if self.annotations is not None:
            obs.update(self.processor.annotation_inputs(self.annotations[episode_index]))
        row = self.processor.observation(obs, training=self.training)
        row.update(self.processor.target(ep[ACTION_KEY], t))
        row["episode_index"] = episode_index
        row["frame_index"] = t
        return row

"""Training windows over a :class:`LeRobotDataset` and their collation into a :class:`Batch`.

One item is one frame ``t`` of one episode: the current images of the chosen cameras,
the instruction, the (normalised) state at ``t`` and the (normalised) action chunk
``a[t : t + chunk]``; with ``augment`` (training only) the views are randomly shifted /
colour-jittered under the sampler's per-sample seed. Past the episode end the chunk is
padded by repeating the last real action (so a policy that executes a whole chunk holds
the final command, e.g. the gripper stays closed) and ``action_mask`` is False there, so
losses ignore the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vlaworks.batch import Batch
from vlaworks.data.augment import AugmentOptions, augment_views
from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer

ACTION_KEY = "action"
STATE_KEY = "observation.state"


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``uint8 [..., 3, H, W]`` images to ``size x size`` (bilinear, antialiased), still uint8."""
    if images.shape[-2:] == (size, size):
        return images
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:]).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).reshape(*lead, 3, size, size)


class WindowDataset(Dataset):
    """Torch dataset of (images, instruction, state, action chunk) windows; see the module docstring.

    Items are dicts with ``images`` (uint8 ``[V, 3, H, W]``), ``instruction``, ``state``
    (float32 ``[S]`` or absent when ``with_state`` is False), ``actions`` (float32
    ``[chunk, D]``), ``action_mask`` (bool ``[chunk]``), ``episode_index``, ``frame_index``
    and ``camera_names``.
    """

    def __init__(
        self,
        ds: LeRobotDataset,
        cameras: Sequence[str] = ("base", "wrist"),
        chunk: int = 8,
        normalizer: Normalizer | None = None,
        with_state: bool = True,
        image_size: int | None = None,
        augment: AugmentOptions | None = None,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1; got {chunk}.")
        if not cameras:
            raise ValueError(f"Choose at least one camera; available: {ds.camera_names}.")
        self.ds = ds
        self.camera_keys = [ds.camera_key(c) for c in cameras]
        self.camera_names = tuple(k.removeprefix("observation.images.") for k in self.camera_keys)
        self.chunk = int(chunk)
        self.with_state = with_state
        self.image_size = image_size
        self.augment = augment if augment is not None and augment.enabled else None
        needed = [ACTION_KEY] + ([STATE_KEY] if with_state else [])
        absent = [k for k in needed if k not in ds.features]
        if absent:
            raise KeyError(f"Dataset {ds.root} has no {absent} feature(s); features: {sorted(ds.features)}.")
        self.normalizer = normalizer
        if normalizer is not None:
            for key in normalizer.keys:
                if key in needed and int(np.prod(ds.features[key]["shape"])) != normalizer.dim(key):
                    raise ValueError(
                        f"Normalizer expects {normalizer.dim(key)} dimensions for {key!r} but dataset "
                        f"{ds.root} stores shape {ds.features[key]['shape']}; build the normaliser from "
                        "this dataset's stats."
                    )

    def __len__(self) -> int:
        return self.ds.num_frames

    def _norm(self, key: str, x: np.ndarray) -> np.ndarray:
        if self.normalizer is None or key not in self.normalizer.keys:
            return x.astype(np.float32)
        return self.normalizer.normalize(key, x.astype(np.float32))

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode_index, t = self.ds.locate(int(index))
        ep = self.ds.episode(episode_index)
        views = [torch.from_numpy(np.ascontiguousarray(ep[k][t])).permute(2, 0, 1) for k in self.camera_keys]
        if self.image_size is not None:
            views = [resize_images(v, self.image_size) for v in views]
        if len({tuple(v.shape) for v in views}) > 1:
            raise ValueError(
                f"Cameras {self.camera_names} have different image sizes {[tuple(v.shape) for v in views]}; "
                "pass image_size to resize them to a common square size."
            )
        images = torch.stack(views)
        if self.augment is not None:
            images = augment_views(images, self.augment)
        actions = ep[ACTION_KEY]
        length = len(actions)
        stop = min(t + self.chunk, length)
        window = actions[t:stop]
        pad = self.chunk - len(window)
        if pad:
            window = np.concatenate([window, np.repeat(actions[-1:], pad, axis=0)])
        mask = np.arange(self.chunk) < stop - t
        task_index = ep.get("task_index")
        instruction = (
            self.ds.tasks.get(int(task_index[t]), ep["task"]) if task_index is not None else ep["task"]
        )
        item: dict[str, Any] = {
            "images": images,
            "instruction": instruction,
            "actions": torch.from_numpy(self._norm(ACTION_KEY, window)),
            "action_mask": torch.from_numpy(mask),
            "episode_index": episode_index,
            "frame_index": t,
            "camera_names": self.camera_names,
        }
        if self.with_state:
            item["state"] = torch.from_numpy(self._norm(STATE_KEY, ep[STATE_KEY][t]))
        return item


def collate_windows(items: Sequence[dict[str, Any]]) -> Batch:
    """Stack :class:`WindowDataset` items into a :class:`vlaworks.batch.Batch`."""
    if not items:
        raise ValueError("collate_windows got an empty list of items.")
    names = items[0]["camera_names"]
    if any(it["camera_names"] != names for it in items):
        raise ValueError(
            "collate_windows: items come from different camera selections; use one WindowDataset."
        )
    state = torch.stack([it["state"] for it in items]) if "state" in items[0] else None
    return Batch(
        images=torch.stack([it["images"] for it in items]),
        instructions=[it["instruction"] for it in items],
        camera_names=tuple(names),
        state=state,
        actions=torch.stack([it["actions"] for it in items]),
        action_mask=torch.stack([it["action_mask"] for it in items]),
        meta={
            "episode_index": torch.tensor([it["episode_index"] for it in items]),
            "frame_index": torch.tensor([it["frame_index"] for it in items]),
        },
    )

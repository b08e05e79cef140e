"""Vision-language samples as a torch dataset, for co-training (seed 004, III-C) and VQA.

:class:`VLDataset` materialises samples ``{"image": uint8 [H, W, 3], "prompt", "answer",
"kind"}`` (from :func:`vlaworks.sim.vl_data.generate_vl_samples` or any iterable of such
dicts) once into memory, optionally cached to an ``.npz`` file, so training never
re-renders scenes. :func:`vlaworks.processing.collate` turns its items into a
:class:`~vlaworks.batch.Batch` with ``vl_prompt`` / ``vl_answer`` and no actions
(``Batch.is_vl``), which :meth:`vlaworks.models.policy.VLAPolicy.forward` trains with
next-token prediction.

Camera views (laid out by :meth:`vlaworks.processing.PolicyProcessor.vision_language`,
the same step VQA uses): a VL sample has one image, a policy may read several cameras.
The image goes to view 0 (the first of ``cameras``, the policy's base view) and every
other view is **black (zeros)**. Zeros rather than copies of the image because the other views (a
wrist camera) show something else in robot data: a black view is an unambiguous "no
view", while a copied third-person image would teach the model wrong correspondences for
that camera. ``cameras`` must equal the policy's ``PolicyConfig.cameras`` (the policy
checks the batch's camera names).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from vlaworks.processing import PolicyProcessor


class VLDataset(Dataset):
    """In-memory vision-language samples; items are stacked by :func:`vlaworks.processing.collate`.

    ``images`` is uint8 ``[N, H, W, 3]``; ``prompts``, ``answers`` and ``kinds`` have ``N``
    entries. ``image_size`` resizes to a square on read (the policy's ``image_size``).
    """

    def __init__(
        self,
        images: np.ndarray,
        prompts: Sequence[str],
        answers: Sequence[str],
        kinds: Sequence[str] | None = None,
        *,
        cameras: Sequence[str] = ("base",),
        image_size: int | None = None,
    ) -> None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"VLDataset images must be uint8 [N, H, W, 3]; got {images.dtype} {images.shape}."
            )
        kinds = list(kinds) if kinds is not None else ["vl"] * len(images)
        if not len(images) == len(prompts) == len(answers) == len(kinds):
            raise ValueError(
                f"VLDataset got {len(images)} images, {len(prompts)} prompts, {len(answers)} answers "
                f"and {len(kinds)} kinds; give one of each per sample."
            )
        self.images = images
        self.prompts = [str(p) for p in prompts]
        self.answers = [str(a) for a in answers]
        self.kinds = [str(k) for k in kinds]
        self.processor = PolicyProcessor(cameras, image_size=image_size)
        #: how the samples were made (``generate`` keys its cache on it)
        self.meta: dict[str, Any] = {}

    @classmethod
    def from_samples(cls, samples: Iterable[dict[str, Any]], **options: Any) -> VLDataset:
        """Materialise an iterable of ``{"image", "prompt", "answer"[, "kind"]}`` dicts."""
        rows = list(samples)
        if not rows:
            raise ValueError("VLDataset.from_samples got no samples.")
        missing = sorted({"image", "prompt", "answer"} - set(rows[0]))
        if missing:
            raise KeyError(f"VL samples need keys image, prompt, answer; the first lacks {missing}.")
        images = np.stack([np.asarray(r["image"], dtype=np.uint8) for r in rows])
        return cls(
            images,
            [r["prompt"] for r in rows],
            [r["answer"] for r in rows],
            [r.get("kind", "vl") for r in rows],
            **options,
        )

    @classmethod
    def generate(
        cls,
        n: int,
        seed: int = 0,
        *,
        render_size: int = 128,
        cache: str | Path | None = None,
        **options: Any,
    ) -> VLDataset:
        """``n`` tabletop VL samples rendered at ``render_size``; with ``cache``, read the
        ``.npz`` there when it holds the same ``(n, seed, render_size)``, else render and write it."""
        key = {"n": int(n), "seed": int(seed), "render_size": int(render_size)}
        if cache is not None and Path(cache).exists():
            cached = cls.load(cache, **options)
            if cached.meta == key:
                return cached
        from vlaworks.sim.vl_data import generate_vl_samples

        data = cls.from_samples(generate_vl_samples(n, seed, render_size), **options)
        data.meta = key
        if cache is not None:
            data.save(cache)
        return data

    def save(self, path: str | Path) -> None:
        """Write images and texts to one ``.npz`` (texts as JSON, no pickling)."""
        texts = {"prompts": self.prompts, "answers": self.answers, "kinds": self.kinds, "meta": self.meta}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, images=self.images, texts=np.frombuffer(json.dumps(texts).encode(), dtype=np.uint8))

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> VLDataset:
        """Read a file written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            images = data["images"]
            texts = json.loads(data["texts"].tobytes().decode())
        dataset = cls(images, texts["prompts"], texts["answers"], texts["kinds"], **options)
        dataset.meta = dict(texts.get("meta", {}))
        return dataset

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.processor.cameras

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.processor.vision_language(
            self.images[index], self.prompts[index], self.answers[index], self.kinds[index]
        )

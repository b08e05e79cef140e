"""Stage 2c: visual prompts derived from a target mask (seed 000: random points inside
the mask, a random line inside the object, the mask's bounding box).

Everything is drawn from a caller-seeded generator, so a dataset's prompts are
reproducible. Coordinates are normalised pixel centres (see :mod:`vlaworks.annotate.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlaworks.annotate.geometry import mask_box, pixel_point
from vlaworks.data.annotations import Box, Point

#: random endpoint pairs tried for the line
LINE_TRIES = 64


@dataclass(frozen=True)
class Prompts:
    """Prompts of one mask: ``points`` (K of them), a ``line`` and the ``box``."""

    points: tuple[Point, ...]
    line: tuple[Point, Point]
    box: Box


def _inside_fraction(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the samples along segment ``a -> b`` (pixel (row, col)) that are in ``mask``."""
    steps = int(np.ceil(np.abs(b - a).max())) + 1
    t = np.linspace(0.0, 1.0, steps)[:, None]
    rows, cols = np.rint(a + t * (b - a)).astype(int).T
    return float(mask[rows, cols].mean())


def derive_prompts(mask: np.ndarray, num_points: int, rng: np.random.Generator) -> Prompts:
    """Prompts of the non-empty ``mask`` (``[H, W]``, nonzero = object).

    Points are distinct mask pixels while there are enough of them. The line joins two
    mask pixels: of :data:`LINE_TRIES` random pairs, the one whose segment stays most
    inside the mask, the longest among equals (a single-pixel mask gives a zero-length line).
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1; got {num_points}.")
    mask = np.asarray(mask) > 0
    box = mask_box(mask)
    if box is None:
        raise ValueError("derive_prompts needs a non-empty mask; discard the episode instead.")
    height, width = mask.shape
    pixels = np.argwhere(mask)
    picks = rng.choice(len(pixels), size=num_points, replace=num_points > len(pixels))
    points = tuple(pixel_point(*pixels[i], height, width) for i in picks)
    pairs = pixels[rng.integers(0, len(pixels), size=(LINE_TRIES, 2))]
    scores = [(_inside_fraction(mask, a, b), float(np.hypot(*(b - a))), k) for k, (a, b) in enumerate(pairs)]
    a, b = pairs[max(scores)[2]]
    line = (pixel_point(*a, height, width), pixel_point(*b, height, width))
    return Prompts(points, line, box.normalised(height, width))

"""Pixel boxes and the conversion to the normalised coordinates of :mod:`vlaworks.batch`.

A :class:`PixelBox` spans pixel edges with exclusive ends (``x1 = last column + 1``), so
it slices arrays directly (``image[box.y0:box.y1, box.x0:box.x1]``) and normalises by
plain division. Normalised points are pixel centres: ``((c + 0.5) / W, (r + 0.5) / H)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlaworks.data.annotations import Box, Point


class PixelBox(NamedTuple):
    """Axis-aligned box in pixels: columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    def region(self, height: int, width: int) -> np.ndarray:
        """``bool [height, width]``, True inside the box."""
        out = np.zeros((height, width), dtype=bool)
        out[self.y0 : self.y1, self.x0 : self.x1] = True
        return out

    def normalised(self, height: int, width: int) -> Box:
        """``(x0, y0, x1, y1)`` in 0..1."""
        return (self.x0 / width, self.y0 / height, self.x1 / width, self.y1 / height)

    def expanded(self, pixels: int, height: int, width: int) -> PixelBox:
        """The box grown by ``pixels`` on every side, clipped to the image."""
        return PixelBox(
            max(self.x0 - pixels, 0),
            max(self.y0 - pixels, 0),
            min(self.x1 + pixels, width),
            min(self.y1 + pixels, height),
        )


def mask_box(mask: np.ndarray) -> PixelBox | None:
    """The tightest box around the True pixels of ``mask``; None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return PixelBox(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def pixel_point(row: float, col: float, height: int, width: int) -> Point:
    """The normalised centre of pixel ``(row, col)``."""
    return ((col + 0.5) / width, (row + 0.5) / height)

"""A weight-free segmenter: colour matching with hysteresis and connected regions.

Inside the region proposal each pixel gets a score in [0, 1] for "looks like the phrase":

* when the phrase names a colour (``red``, ``blue``, ``white``, ...), closeness of the
  pixel's hue to the colour's textbook hue, gated by the pixel being more saturated than
  the background (achromatic names use brightness and low saturation instead);
* otherwise, the pixel's colour distance from the background.

The background is the median colour of the pixels outside the proposal (the table, in a
tabletop scene). Pixels scoring at least :data:`HIGH` seed regions that grow through
neighbours scoring at least :data:`LOW` (hysteresis, as in Canny edge linking); gripper
pixels are excluded. Of the resulting regions the one nearest the gripper wins (the
gripper closes on the target at the key frame), the largest among equally near ones. Its
confidence is its mean score, discounted by its distance to the gripper.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
from scipy import ndimage

from vlaworks.annotate.segment import Segmentation, SegmentRequest

#: textbook hues (degrees) of chromatic colour names
HUES = {
    "red": 0.0,
    "orange": 30.0,
    "yellow": 55.0,
    "green": 120.0,
    "cyan": 185.0,
    "blue": 225.0,
    "purple": 275.0,
    "violet": 275.0,
    "magenta": 300.0,
    "pink": 330.0,
}
ACHROMATIC = ("white", "black", "gray", "grey")
HUE_TOLERANCE = 30.0  # degrees at which the hue score reaches 0
SATURATION_GAP = 0.2  # saturation above the background's for a full chromatic score
CONTRAST = 0.3  # RGB distance (0..1 channels) from the background for a full contrast score
HIGH, LOW = 0.6, 0.3
MIN_PIXELS = 2
DISTANCE_SCALE = 0.05  # of the image side: confidence falls by 1/e per this distance from the gripper


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x / width, 0.0, 1.0)


def colour_name(phrase: str) -> str | None:
    """The first colour word of ``phrase`` (``"grey"`` reads as ``"gray"``), or None."""
    for word in phrase.lower().split():
        if word in HUES or word in ACHROMATIC:
            return "gray" if word == "grey" else word
    return None


def score_map(image: np.ndarray, phrase: str, background: np.ndarray) -> np.ndarray:
    """``float [H, W]`` in [0, 1]: how much each pixel looks like ``phrase``'s object."""
    rgb = image.astype(np.float64) / 255.0
    hsv = mcolors.rgb_to_hsv(rgb)
    bg_hsv = mcolors.rgb_to_hsv(background[None, None, :])[0, 0]
    hue, sat, val = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    colour = colour_name(phrase)
    if colour in HUES:
        gap = np.abs((hue - HUES[colour] + 180.0) % 360.0 - 180.0)
        return np.clip(1.0 - gap / HUE_TOLERANCE, 0.0, 1.0) * _ramp(sat - bg_hsv[1], SATURATION_GAP)
    grey = 1.0 - _ramp(sat, 0.25)
    if colour == "white":
        return grey * _ramp(val - bg_hsv[2], 0.2)
    if colour == "black":
        return grey * _ramp(bg_hsv[2] - val, 0.2)
    if colour == "gray":
        return grey * _ramp(np.abs(rgb - background).sum(-1), CONTRAST)
    return _ramp(np.linalg.norm(rgb - background, axis=-1), CONTRAST)


class ClassicalSegmenter:
    """See the module docstring."""

    name = "classical"

    def __call__(self, request: SegmentRequest) -> Segmentation:
        image, box = request.image, request.proposal
        height, width = image.shape[:2]
        inside = box.region(height, width)
        outside = ~inside & ~request.gripper
        pixels = image[outside] if outside.any() else image.reshape(-1, 3)
        background = np.median(pixels.astype(np.float64), axis=0) / 255.0
        score = score_map(image, request.phrase, background)
        allowed = inside & ~request.gripper
        labels, count = ndimage.label((score >= LOW) & allowed, structure=np.ones((3, 3)))
        seeded = np.unique(labels[(score >= HIGH) & allowed & (labels > 0)])
        empty = Segmentation(np.zeros((height, width), dtype=bool), 0.0)
        if count == 0 or seeded.size == 0:
            return empty
        if request.gripper.any():
            distance = ndimage.distance_transform_edt(~request.gripper)
        else:
            distance = np.zeros((height, width))
        best: tuple[float, int, int] | None = None
        for label in seeded:
            region = labels == label
            size = int(region.sum())
            if size < MIN_PIXELS:
                continue
            key = (-float(distance[region].min()), size, int(label))
            best = max(best, key) if best is not None else key
        if best is None:
            return empty
        mask = labels == best[2]
        near = np.exp(best[0] / (DISTANCE_SCALE * max(height, width)))
        return Segmentation(mask, float(np.clip(score[mask].mean() * near, 0.0, 1.0)))

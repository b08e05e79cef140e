"""Training-time augmentation: random shift and colour jitter on uint8 views, the
instruction rewording of :mod:`vlaworks.data.instructions`, and Gaussian noise on the
normalised proprio state.

Random shift (DrQ, robomimic's crop randomizer): each view is replicate-padded by
``shift`` pixels and cropped back to its size at a random offset, so the policy cannot
key on exact pixel positions of a few fixed-layout demonstrations. Colour jitter scales
brightness and contrast by a random factor in ``[1 - x, 1 + x]``.

A shift moves what the view shows, so the pixel masks and visual prompts of the same
sample move with it (:class:`Shift` applies one draw to all three).

State noise adds ``N(0, state_noise²)`` to each dimension of the *normalised* state (by
default each dimension's 1st..99th percentiles span [-1, 1], so one number fits every
robot; 0.1 is 5 % of that span): the policy cannot read a demonstration's
exact trajectory off the proprio state and must take where to go from the views, and it sees
states a little off the demonstrations, as it will in closed loop. The action targets are not
changed.

Randomness comes from torch's global generator, which the sampler seeds per sample
(``vlaworks.train.sampler.load_sample``), so an augmented run is reproducible and resumes
exactly. Only the training window dataset applies it; evaluation, serving and offline
metrics never do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from vlaworks.batch import VisualPrompt


@dataclass
class AugmentOptions:
    """Which augmentations training applies (all off by default)."""

    #: random-shift padding in pixels (0: off)
    shift: int = 0
    #: brightness jitter: multiply by a factor in [1 - brightness, 1 + brightness] (0: off)
    brightness: float = 0.0
    #: contrast jitter: scale around the view's mean by a factor in [1 - contrast, 1 + contrast]
    contrast: float = 0.0
    #: probability of rewording a sample's instruction (``vlaworks.data.instructions``; 0: off)
    instructions: float = 0.0
    #: std of the Gaussian noise added to the normalised proprio state (0: off)
    state_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"augment.shift must be >= 0 pixels; got {self.shift}.")
        for name in ("brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1); got {value}.")
        p = self.instructions
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(
                f"augment.instructions is the probability of rewording an instruction, a number in "
                f"[0, 1] (e.g. --set policy.augment.instructions=0.5); got {p!r}."
            )
        self.instructions = float(p)
        if not self.state_noise >= 0.0:
            raise ValueError(
                f"augment.state_noise is a std in normalised state units, >= 0; got {self.state_noise}."
            )

    @property
    def enabled(self) -> bool:
        return (
            self.shift > 0
            or self.brightness > 0
            or self.contrast > 0
            or self.instructions > 0
            or self.state_noise > 0
        )


@dataclass(frozen=True)
class Shift:
    """One random-shift draw for a sample's ``V`` views: view ``i``'s pixel ``(r, c)`` shows
    what was at ``(r + dy[i] - pad, c + dx[i] - pad)`` (replicate padding at the border)."""

    pad: int
    dy: tuple[int, ...]
    dx: tuple[int, ...]

    @classmethod
    def draw(cls, views: int, pad: int) -> Shift:
        """Offsets in ``[0, 2 pad]`` from torch's global generator (``dy`` then ``dx``)."""
        dy = torch.randint(0, 2 * pad + 1, (views,)).tolist()
        dx = torch.randint(0, 2 * pad + 1, (views,)).tolist()
        return cls(pad, tuple(dy), tuple(dx))

    def view(self, index: int, image: torch.Tensor) -> torch.Tensor:
        """View ``index``'s ``[C, H, W]`` map shifted (same dtype)."""
        _, h, w = image.shape
        p, y, x = self.pad, self.dy[index], self.dx[index]
        padded = F.pad(image[None].float(), (p, p, p, p), mode="replicate")[0]
        return padded[:, y : y + h, x : x + w].to(image.dtype)

    def maps(self, maps: torch.Tensor) -> torch.Tensor:
        """``[V, C, H, W]`` maps, each view shifted (same dtype)."""
        return torch.stack([self.view(i, m) for i, m in enumerate(maps)])

    def masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Bool pixel masks ``[V, H, W]`` shifted like their views."""
        return self.maps(masks[:, None])[:, 0]

    def prompt(self, prompt: VisualPrompt, size: tuple[int, int]) -> VisualPrompt:
        """A visual prompt on a view of ``size`` (H, W) moved with that view (coordinates
        clamped to the image)."""
        h, w = size
        i = prompt.view
        ox, oy = (self.dx[i] - self.pad) / w, (self.dy[i] - self.pad) / h
        coords = tuple((min(max(x - ox, 0.0), 1.0), min(max(y - oy, 0.0), 1.0)) for x, y in prompt.coords)
        mask = self.view(i, prompt.mask[None])[0] if prompt.mask is not None else None
        return replace(prompt, coords=coords, mask=mask)


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """``uint8 [V, 3, H, W]`` -> the same shape, each view shifted by up to ``pad`` px."""
    return Shift.draw(images.shape[0], pad).maps(images)


def color_jitter(images: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    """``uint8 [V, 3, H, W]`` with per-view random brightness and contrast factors."""
    v = images.shape[0]
    x = images.float()
    if brightness > 0:
        x = x * (1 + (torch.rand(v, 1, 1, 1) * 2 - 1) * brightness)
    if contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + (torch.rand(v, 1, 1, 1) * 2 - 1) * contrast) + mean
    return x.round().clamp(0, 255).to(torch.uint8)


def noisy_state(state: torch.Tensor, std: float) -> torch.Tensor:
    """``state`` (normalised, float ``[S]``) plus Gaussian noise of ``std`` per dimension."""
    return state + torch.randn(state.shape) * std if std > 0 else state


def augment_views(images: torch.Tensor, options: AugmentOptions, shift: Shift | None = None) -> torch.Tensor:
    """Apply ``options`` to one sample's views ``uint8 [V, 3, H, W]``; ``shift`` is the
    sample's already drawn shift (drawn here when ``options.shift`` asks and none is given)."""
    if options.shift > 0:
        images = (shift or Shift.draw(images.shape[0], options.shift)).maps(images)
    if options.brightness > 0 or options.contrast > 0:
        images = color_jitter(images, options.brightness, options.contrast)
    return images

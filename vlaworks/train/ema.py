"""Exponential moving average (EMA) of the trained weights, the policy a run exports.

Behaviour-cloning policies are commonly evaluated with an EMA of their weights (openpi
trains π0 with ``ema_decay=0.99``; Diffusion Policy and robomimic keep one too): the
average over the last ~``1 / (1 - decay)`` steps smooths the step-to-step noise of the
final weights. After every optimizer step

    ema <- d_t * ema + (1 - d_t) * weights,    d_t = min(decay, (1 + t) / (10 + t))

where ``t`` counts the updates so far; the warm-up ``(1 + t) / (10 + t)`` (timm's and
Diffusion Policy's) keeps the first steps' random initialisation from dominating a short run.

Only trainable parameters are averaged: a frozen VLM's weights never change, so copying
them (as ``torch.optim.swa_utils.AveragedModel`` would, a whole second model) only costs
memory. Buffers are not averaged (BatchNorm statistics: the policies here use GroupNorm /
LayerNorm).

The trainer checkpoints the average as ``ema.safetensors`` beside the training weights
(resuming needs both) and copies it into the model when training ends, so the run's
``policy/`` holds the averaged weights; :func:`vlaworks.models.checkpoint.load_policy`
applies a checkpoint folder's ``ema.safetensors`` the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

EMA_FILE = "ema.safetensors"
#: the ``safetensors`` metadata key holding the number of updates (for the warm-up)
_UPDATES = "updates"


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for update number ``updates`` (0-based): ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightEma:
    """The EMA of ``model``'s trainable parameters (see the module docstring)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"The EMA decay must be in (0, 1), e.g. 0.999; got {decay} (0 turns EMA off).")
        self.decay = float(decay)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (call after each optimizer step)."""
        weight = 1.0 - ema_decay_at(self.decay, self.updates)
        torch._foreach_lerp_(self.shadow, self.params, weight)
        self.updates += 1

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Overwrite the model's trainable parameters with the average."""
        for param, avg in zip(self.params, self.shadow, strict=True):
            param.copy_(avg)

    def save(self, path: Path) -> None:
        """Write the average (and the update count) to ``path`` (an ``ema.safetensors`` file)."""
        tensors = {n: s.contiguous().cpu() for n, s in zip(self.names, self.shadow, strict=True)}
        save_file(tensors, str(path), metadata={_UPDATES: str(self.updates), "decay": str(self.decay)})

    @torch.no_grad()
    def load(self, path: Path) -> None:
        """Restore an average written by :meth:`save` for the same trainable parameters."""
        with safe_open(str(path), framework="pt") as f:  # tensors and update count in one read
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (a safe_open handle is not iterable)
            updates = int((f.metadata() or {}).get(_UPDATES, 0))
        if sorted(tensors) != sorted(self.names):
            missing = sorted(set(self.names) - set(tensors))[:4]
            extra = sorted(set(tensors) - set(self.names))[:4]
            raise ValueError(
                f"{path} averages other parameters than this run trains (missing {missing}, extra {extra}); "
                "resume with the settings the run was started with."
            )
        for name, avg in zip(self.names, self.shadow, strict=True):
            avg.copy_(tensors[name])
        self.updates = updates


@torch.no_grad()
def apply_ema_file(model: nn.Module, path: Path) -> None:
    """Load the averaged parameters of an ``ema.safetensors`` file into ``model`` (a policy
    rebuilt from a trainer checkpoint folder); every averaged name must be a parameter."""
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise ValueError(f"{path} holds weights the model does not have: {unknown[:4]}.")
    for name, value in tensors.items():
        params[name].copy_(value)

"""Action heads: hidden states -> action chunk and loss.

A head may add its own token blocks (``<ActionQuery>``, OFT placeholders, teacher-forced
answer tokens) through :meth:`ActionHead.extra_tokens`; the policy appends them after
the token sources' blocks. Training is ``extra_tokens -> backbone -> loss``; inference is
:meth:`ActionHead.predict`, which runs the backbone itself because autoregressive heads
decode token by token with the backbone's cache.

Actions in and out of a head are *normalised* (see ``vlaworks.data``): ``[B, T, 7]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens


class ActionHead(nn.Module, ABC):
    """Turns backbone hidden states into an action chunk ``[B, chunk, action_dim]``."""

    chunk: int
    action_dim: int
    #: whether :meth:`loss` and :meth:`predict` read every layer's hidden states (flow expert)
    needs_hidden_states: bool = False

    def target_actions(self, batch: Batch) -> torch.Tensor:
        """The batch's normalised target chunk ``[B, chunk, action_dim]``, checked against the
        head's shape (a VL batch has none; a dataset with another chunk size is refused)."""
        name = type(self).__name__
        if batch.actions is None:
            raise ValueError(f"{name} training needs batch.actions (a robot batch, not a VL batch).")
        if tuple(batch.actions.shape[1:]) != (self.chunk, self.action_dim):
            raise ValueError(
                f"Batch.actions is {tuple(batch.actions.shape)} but {name} predicts "
                f"[B, {self.chunk}, {self.action_dim}]; make the dataset's chunk size match the policy's."
            )
        return batch.actions

    @staticmethod
    def block_states(out: BackboneOutput, block: str) -> torch.Tensor:
        """Last hidden states ``[B, n, hidden]`` of this head's block ``block`` in ``out``."""
        if block not in out.spans:
            raise KeyError(
                f"Backbone output has no {block!r} span (spans: {sorted(out.spans)}); pass this "
                "head's extra_tokens to the backbone."
            )
        return out.hidden[:, out.spans[block]]

    @abstractmethod
    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        """Blocks this head appends after the token sources' blocks."""

    @abstractmethod
    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar training loss and float metrics for logging, from a training forward."""

    @abstractmethod
    @torch.no_grad()
    def predict(
        self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]
    ) -> torch.Tensor:
        """Normalised action chunk ``[B, chunk, action_dim]``; ``prefix`` are the token
        sources' blocks to place before the head's own."""

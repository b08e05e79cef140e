"""π0's flow-matching action expert (Black et al. 2024, "π0"; openpi's ``pi0.py``).

A separate, narrower transformer (the *action expert*) produces the action chunk. Its
tokens are a suffix after the VLM's prefix (images, instruction, token sources): one
proprio token (when the policy reads state) and ``chunk`` noisy-action tokens. Each expert
layer ``l`` (0-based) attends to the prefix through keys and values made from the output
of VLM layer ``ceil((l + 1) * n_vlm / layers)`` (1-based; with ``layers == n_vlm`` this is
π0's one-to-one layer pairing, and the deepest expert layer reads the VLM's last layer, so
every VLM layer trains), and to the suffix itself, under π0's
block-causal mask, written explicitly as a float additive mask:

* prefix tokens never see the suffix (the VLM runs once, without the expert);
* the state token sees the prefix and itself;
* action tokens see the prefix, the state token and every action token (bidirectional);
* left-padding positions of the prefix are masked out for every query.

Training (conditional flow matching, openpi's convention): ``t ~ Beta(1.5, 1)`` scaled to
``[0.001, 1]``, ``x_t = t * noise + (1 - t) * actions``, target velocity ``u = noise -
actions``, loss = mean squared error of the predicted velocity over the real
(``action_mask``) steps. Inference: start at ``t = 1`` from Gaussian noise and take
``num_steps`` Euler steps ``x <- x - v / num_steps`` to ``t = 0`` (π0: 10); the prefix
keys and values are computed once and reused by every step.

Each action token is ``W3 swish(W2 [W1 a ; φ(t)])`` with φ the sine-cosine embedding of
``t`` (periods 4e-3 .. 4, as π0), plus a learned position embedding per chunk step.

Differences from π0, on purpose: the prefix keys / values are the expert's own
projections of the output of the paired VLM layer (π0 applies that layer's own K/V
projections to its input; ours works with every backbone family without reaching into its
attention modules); the expert's depth is an option instead of always equal to the VLM's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.heads.base import ActionHead


def time_embedding(
    t: torch.Tensor, width: int, min_period: float = 4e-3, max_period: float = 4.0
) -> torch.Tensor:
    """π0's sine-cosine embedding of flow times ``t`` ``[B]`` -> ``[B, width]``."""
    if width % 2:
        raise ValueError(f"time embedding width must be even; got {width}.")
    fraction = torch.linspace(0.0, 1.0, width // 2, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.float()[:, None] * (2 * math.pi / period)[None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def sample_time(batch: int, device: torch.device, alpha: float = 1.5, beta: float = 1.0) -> torch.Tensor:
    """Flow times ``t ~ Beta(alpha, beta) * 0.999 + 0.001`` (openpi), more mass near the data end."""
    dist = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(beta))
    return (dist.sample((batch,)) * 0.999 + 0.001).to(device)


class ExpertLayer(nn.Module):
    """One pre-norm expert block: attention over [prefix ; suffix] then an MLP (suffix only)."""

    def __init__(self, width: int, prefix_width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.RMSNorm(width)
        self.prefix_norm = nn.RMSNorm(prefix_width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.prefix_kv = nn.Linear(prefix_width, 2 * width)
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.RMSNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        return x.view(b, n, self.heads, w // self.heads).transpose(1, 2)

    def prefix_keys(self, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, heads, P, w/heads]`` of the VLM prefix states (computed once)."""
        k, v = self.prefix_kv(self.prefix_norm(prefix)).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self, x: torch.Tensor, prefix_kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        h = self.norm(x)
        k, v = self.kv(h).chunk(2, dim=-1)
        keys = torch.cat([prefix_kv[0], self._heads(k)], dim=2)
        values = torch.cat([prefix_kv[1], self._heads(v)], dim=2)
        q = self._heads(self.q(h))
        attn = F.scaled_dot_product_attention(
            q, keys.to(q.dtype), values.to(q.dtype), attn_mask=mask.to(q.dtype)
        )
        x = x + self.out(attn.transpose(1, 2).reshape(x.shape))
        return x + self.mlp(self.mlp_norm(x))


@dataclass
class FlowOptions:
    """Options of the ``flow`` head (π0's action expert)."""

    #: width of the expert's tokens; None: half the VLM's hidden size (π0: 1024 beside 2048)
    width: int | None = None
    #: expert layers, each paired with a VLM depth (module docstring)
    layers: int = 4
    #: attention heads of the expert (width / heads must be even)
    heads: int = 4
    #: MLP width as a multiple of the expert width
    mlp_ratio: int = 4
    #: Euler integration steps at inference (π0: 10)
    num_steps: int = 10
    #: flow times are drawn from Beta(time_alpha, time_beta) (π0 / openpi: 1.5, 1)
    time_alpha: float = 1.5
    time_beta: float = 1.0

    def __post_init__(self) -> None:
        if self.layers < 1 or self.num_steps < 1 or self.heads < 1 or self.mlp_ratio < 1:
            raise ValueError(
                f"flow head layers, num_steps, heads and mlp_ratio must be >= 1; got {self.layers}, "
                f"{self.num_steps}, {self.heads}, {self.mlp_ratio}."
            )
        if self.time_alpha <= 0 or self.time_beta <= 0:
            raise ValueError(
                f"flow time_alpha and time_beta must be > 0; got {self.time_alpha}, {self.time_beta}."
            )


class FlowMatchingHead(ActionHead):
    """π0's action expert trained by flow matching; see the module docstring."""

    needs_hidden_states = True

    def __init__(
        self,
        hidden_size: int,
        chunk: int,
        action_dim: int = 7,
        state_dim: int | None = None,
        options: FlowOptions | None = None,
    ) -> None:
        super().__init__()
        options = options or FlowOptions()
        width = options.width or max(hidden_size // 2, 2 * options.heads)
        if width % options.heads or (width // options.heads) % 2:
            raise ValueError(f"flow head width {width} must split into {options.heads} heads of even size.")
        self.chunk, self.action_dim, self.width = chunk, action_dim, width
        self.num_steps = options.num_steps
        self.time_alpha, self.time_beta = options.time_alpha, options.time_beta
        self.action_in = nn.Linear(action_dim, width)
        self.time_mix = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))
        self.position = nn.Parameter(torch.randn(1, chunk, width) * 0.02)
        self.state_in = nn.Linear(state_dim, width) if state_dim else None
        self.layers = nn.ModuleList(
            ExpertLayer(width, hidden_size, options.heads, options.mlp_ratio) for _ in range(options.layers)
        )
        self.final_norm = nn.RMSNorm(width)
        self.action_out = nn.Linear(width, action_dim)

    @classmethod
    def from_config(cls, backbone: Backbone, config: PolicyConfig, options: FlowOptions) -> FlowMatchingHead:
        """Registry builder: prefix width from the backbone; chunk, action and state sizes from
        the config (the state goes into the expert when the policy reads it)."""
        state_dim = config.state_dim if config.use_state else None
        if config.use_state and not state_dim:
            raise ValueError(
                "The flow head reads the state: set PolicyConfig.state_dim (train fills it from data)."
            )
        return cls(backbone.hidden_size, config.chunk_size, config.action_dim, state_dim, options)

    # --- the expert ------------------------------------------------------------------------------
    def prefix(self, out: BackboneOutput) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Per expert layer, keys / values of its VLM depth; and the prefix key mask ``[B, P]``."""
        states = out.hidden_states
        if states is None:
            raise ValueError(
                "The flow head needs the backbone's hidden states; run it with output_hidden_states."
            )
        depth, count = len(states) - 1, len(self.layers)
        kv = [
            layer.prefix_keys(states[math.ceil((i + 1) * depth / count)])
            for i, layer in enumerate(self.layers)
        ]
        return kv, out.attention_mask.bool()

    def mask(self, prefix_mask: torch.Tensor, has_state: bool) -> torch.Tensor:
        """π0's block-causal mask as a float additive ``[B, 1, S, P + S]`` mask (module docstring)."""
        b, p = prefix_mask.shape
        s = self.chunk + int(has_state)
        allowed = torch.ones((b, s, p + s), dtype=torch.bool, device=prefix_mask.device)
        allowed[:, :, :p] = prefix_mask[:, None, :]
        if has_state:
            allowed[:, 0, p + 1 :] = False  # the state token does not see the actions
        return torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, float("-inf"))[:, None]

    def velocity(
        self,
        noisy: torch.Tensor,
        t: torch.Tensor,
        prefix_kv: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor,
        state: torch.Tensor | None,
    ) -> torch.Tensor:
        """Predicted velocity ``[B, chunk, action_dim]`` at noisy chunk ``noisy`` and times ``t``."""
        dtype = self.action_in.weight.dtype
        tokens = self.action_in(noisy.to(dtype))
        phase = time_embedding(t, self.width).to(tokens.dtype)[:, None].expand_as(tokens)
        x = self.time_mix(torch.cat([tokens, phase], dim=-1)) + self.position.to(tokens.dtype)
        if state is not None:
            x = torch.cat([self.state_in(state.to(dtype))[:, None], x], dim=1)
        for layer, kv in zip(self.layers, prefix_kv, strict=True):
            x = layer(x, kv, mask)
        return self.action_out(self.final_norm(x[:, -self.chunk :]))

    def _state(self, batch: Batch) -> torch.Tensor | None:
        if self.state_in is None:
            return None
        if batch.state is None:
            raise ValueError("This flow head reads the proprio state but the batch has none.")
        return batch.state

    # --- ActionHead ------------------------------------------------------------------------------
    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        """None: the expert's tokens live in its own transformer, not in the VLM sequence."""
        return []

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        actions = self.target_actions(batch).float()
        kv, prefix_mask = self.prefix(out)
        state = self._state(batch)
        t = sample_time(batch.size, actions.device, self.time_alpha, self.time_beta)
        noise = torch.randn_like(actions)
        noisy = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        v = self.velocity(noisy, t, kv, self.mask(prefix_mask, state is not None), state).float()
        steps = batch.action_mask.to(v.device).float()
        error = ((v - (noise - actions)) ** 2).mean(-1)
        loss = (error * steps).sum() / steps.sum().clamp(min=1.0)
        return loss, {"flow_mse": float(loss.detach())}

    @torch.no_grad()
    def predict(self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens]) -> torch.Tensor:
        out = backbone(batch.images, batch.instructions, list(prefix), output_hidden_states=True)
        kv, prefix_mask = self.prefix(out)
        state = self._state(batch)
        mask = self.mask(prefix_mask, state is not None)
        device = out.hidden.device
        x = torch.randn((batch.size, self.chunk, self.action_dim), device=device)
        dt = 1.0 / self.num_steps
        for i in range(self.num_steps):
            t = torch.full((batch.size,), 1.0 - i * dt, device=device)
            x = x - dt * self.velocity(x, t, kv, mask, state).float()
        return x


PART = Part(FlowOptions, FlowMatchingHead.from_config)

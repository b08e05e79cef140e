"""A tiny fake :class:`Backbone` (the contract in ``backbones/base.py``) for policy-core tests.

Four patch tokens per view, byte-level instruction tokens, extra blocks appended at the
end; one causal attention block with LM-style linear names (``q_proj`` ...), so LoRA,
freezing and gradient-flow tests exercise the same code paths as real backbones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.backbones.family import BackboneOptions
from vlaworks.models.config import Part

TEXT_LEN = 8


class _Block(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.o_proj = nn.Linear(hidden, hidden)
        self.up_proj = nn.Linear(hidden, 2 * hidden)
        self.down_proj = nn.Linear(2 * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        attn = F.scaled_dot_product_attention(self.q_proj(h), self.k_proj(h), self.v_proj(h), is_causal=True)
        x = x + self.o_proj(attn)
        return x + self.down_proj(F.gelu(self.up_proj(self.norm(x))))


class FakeBackbone(Backbone):
    """Patchify conv "vision encoder" + byte embeddings + one causal block + LM head."""

    def __init__(self, hidden: int = 32, vocab: int = 256) -> None:
        super().__init__()
        self.hidden_size = hidden
        self.vision = nn.Conv2d(3, hidden, kernel_size=8, stride=8)
        self.embed = nn.Embedding(vocab, hidden)
        self.block = _Block(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(
        self,
        images: torch.Tensor,
        instructions: list[str],
        extras: list[ExtraTokens] = (),
        *,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BackboneOutput:
        b, v = images.shape[:2]
        pixels = F.interpolate(images.flatten(0, 1).float() / 255.0, size=(16, 16), mode="bilinear")
        img = self.vision(pixels).flatten(2).transpose(1, 2).reshape(b, v * 4, self.hidden_size)
        ids = torch.tensor(
            [list(s.encode()[:TEXT_LEN].rjust(TEXT_LEN, b"\0")) for s in instructions], device=images.device
        )
        parts = [img, self.embed(ids)]
        spans = {"image": slice(0, v * 4)}
        pos = v * 4 + TEXT_LEN
        for block in extras:
            emb = block.embeds if block.embeds is not None else self.embed(block.ids)
            parts.append(emb)
            spans[block.name] = slice(pos, pos + block.length)
            pos += block.length
        hidden = self.block(torch.cat(parts, dim=1))
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return BackboneOutput(hidden=hidden, spans=spans, attention_mask=mask)

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError("FakeBackbone does not decode; token heads test on real backbones.")

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def input_embeddings(self) -> nn.Embedding:
        return self.embed

    def vision_modules(self) -> list[nn.Module]:
        return [self.vision]

    @property
    def tokenizer(self) -> Any:
        return None

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "fake_backbone.json").write_text(json.dumps({"hidden": self.hidden_size}))


@dataclass
class FakeOptions(BackboneOptions):
    """Options of the fake family: width and the seed of its random weights."""

    hidden: int = 32
    seed: int = 0


def build_fake_backbone(options: FakeOptions) -> FakeBackbone:
    """The fake family's builder (seeded for reproducibility)."""
    torch.manual_seed(options.seed)
    return FakeBackbone(options.hidden)


@pytest.fixture
def fake_backbones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the ``"fake"`` backbone (options ``hidden``, ``seed``) for one test."""
    from vlaworks.models.backbones import BACKBONES

    monkeypatch.setitem(BACKBONES.entries, "fake", Part(FakeOptions, build_fake_backbone))


@pytest.fixture
def fake_backbone(fake_backbones) -> FakeBackbone:
    """A seeded fake backbone of width 32 (the "fake" registry name is registered meanwhile)."""
    return build_fake_backbone(FakeOptions(hidden=32))


@pytest.fixture
def stats() -> dict[str, dict[str, list[float]]]:
    """Dataset-style statistics for 7-D actions (gripper in [-1, 1]) and an 8-D state."""
    return {
        "action": {
            "q01": [-0.5] * 6 + [-1.0], "q99": [0.5] * 6 + [1.0],
            "min": [-0.6] * 6 + [-1.0], "max": [0.6] * 6 + [1.0],
        },
        "observation.state": {"q01": [-2.0] * 8, "q99": [2.0] * 8, "min": [-3.0] * 8, "max": [3.0] * 8},
    }


@pytest.fixture
def normalizer(stats):
    from vlaworks.data.normalize import Normalizer

    return Normalizer(stats, mode="q99")

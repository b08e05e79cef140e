"""A plain CNN trunk (robomimic-style behaviour cloning): the non-VLA floor of every table.

Per camera a 4-layer conv encoder (GroupNorm, ReLU, two stride-2 layers) read out by
spatial-softmax keypoints (expected x, y per channel) plus mean pooling; the instruction
as a learned bag-of-tokens embedding; the proprio state and the head's query arrive as
extra blocks from the policy's token sources and head, exactly as they reach a VLM.

It fills the backbone contract without a language model: the context (all views and the
instruction) is one vector, and the hidden state of each extra token is a 2-layer MLP of
``[context, sum of the embeddings of the extra tokens up to it]`` (a causal bag: the
``<ActionQuery>`` sees the proprio token before it, as in a causal LM). So ``bc-cnn`` is a
recipe like any other: the same window data, normaliser, query-MLP head, trainer,
checkpoints and evaluator. It has no LM head, so token heads (bins / string / FAST) and
vision-language co-training do not apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.backbones.family import (
    META_FILE,
    BackboneFamily,
    BackboneOptions,
    Folder,
    check_folder_agrees,
)
from vlaworks.models.text_tokenizer import build_tiny_tokenizer
from vlaworks.models.vision.conv import SpatialSoftmax, conv_trunk

#: the registry model's camera views, width and conv channels
DEFAULT_VIEWS, DEFAULT_HIDDEN, DEFAULT_CHANNELS = 2, 256, (32, 64)


@dataclass
class CNNOptions(BackboneOptions):
    """Options of the CNN trunk (None: 2 views, width 256, channels (32, 64)); with a folder,
    what it must hold."""

    #: camera views, one conv encoder each
    views: int | None = None
    #: width of the fused context and of every hidden state
    hidden_size: int | None = None
    #: conv channels of the first and last two layers
    channels: tuple[int, int] | None = None


class ConvEncoder(nn.Module):
    """One camera: conv(3->c1) / conv(c1->c1, s2) / conv(c1->c2, s2) / conv(c2->c2), each GroupNorm +
    ReLU, then spatial-softmax keypoints ⊕ mean pooling: ``[N, 3, H, W]`` uint8 -> ``[N, 3 * c2]``."""

    def __init__(self, channels: tuple[int, int] = (32, 64)) -> None:
        super().__init__()
        self.net = conv_trunk(channels, stride=4)
        self.keypoints = SpatialSoftmax()
        self.out_dim = 3 * channels[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.net(images.float() / 127.5 - 1.0)
        return torch.cat([self.keypoints(x), x.mean(dim=(2, 3))], dim=-1)


class CNNBackbone(Backbone, BackboneFamily):
    """Per-view conv encoders + instruction embedding + MLP fusion; see the module docstring."""

    family = "cnn"
    Options = CNNOptions

    def __init__(
        self,
        views: int = DEFAULT_VIEWS,
        hidden_size: int = DEFAULT_HIDDEN,
        channels: tuple[int, int] = DEFAULT_CHANNELS,
    ) -> None:
        super().__init__()
        if views < 1 or hidden_size < 2:
            raise ValueError(
                f"CNNBackbone needs views >= 1 and hidden_size >= 2; got {views}, {hidden_size}."
            )
        self.views = int(views)
        self.hidden_size = int(hidden_size)
        self.channels = (int(channels[0]), int(channels[1]))
        self._tokenizer = build_tiny_tokenizer()
        self.encoders = nn.ModuleList(ConvEncoder(self.channels) for _ in range(self.views))
        self.text = nn.Embedding(len(self._tokenizer), self.hidden_size)
        context = self.views * self.encoders[0].out_dim + self.hidden_size
        self.fuse = nn.Sequential(
            nn.Linear(context + self.hidden_size, self.hidden_size),
            nn.ReLU(),
            nn.Linear(self.hidden_size, self.hidden_size),
            nn.ReLU(),
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _instruction_embedding(self, instructions: list[str]) -> torch.Tensor:
        tok = self._tokenizer
        rows = [tok(t.strip().lower(), add_special_tokens=False).input_ids or [0] for t in instructions]
        device = self.text.weight.device
        flat = torch.tensor([i for row in rows for i in row], device=device)
        starts = [0, *torch.tensor([len(r) for r in rows]).cumsum(0)[:-1].tolist()]
        offsets = torch.tensor(starts, device=device)
        return F.embedding_bag(flat, self.text.weight, offsets, mode="mean")

    def forward(
        self,
        images: torch.Tensor,
        instructions: list[str],
        extras: list[ExtraTokens] = (),
        *,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BackboneOutput:
        if images.ndim != 5 or images.shape[1] != self.views:
            raise ValueError(
                f"This CNN trunk was built for {self.views} camera view(s) [B, {self.views}, 3, H, W]; got "
                f"{tuple(images.shape)}. Set policy.backbone_options.views to the number of cameras."
            )
        if use_cache:
            raise ValueError("The CNN trunk has no language model to decode with; use a continuous head.")
        b = images.shape[0]
        device = self.text.weight.device
        feats = [enc(images[:, v].to(device)) for v, enc in enumerate(self.encoders)]
        context = torch.cat([*feats, self._instruction_embedding(list(instructions))], dim=-1)
        spans: dict[str, slice] = {"image": slice(0, 0)}
        hidden, running, pos = [], torch.zeros(b, self.hidden_size, device=device), 0
        for block in extras:
            if block.embeds is None:
                raise ValueError(f"The CNN trunk takes embedding blocks only; {block.name!r} has token ids.")
            cumulative = running[:, None] + block.embeds.to(device).float().cumsum(1)
            running = cumulative[:, -1]
            n = block.embeds.shape[1]
            hidden.append(self.fuse(torch.cat([context[:, None].expand(-1, n, -1), cumulative], dim=-1)))
            spans[block.name] = slice(pos, pos + n)
            pos += n
        out = torch.cat(hidden, dim=1) if hidden else context.new_zeros(b, 0, self.hidden_size)
        return BackboneOutput(hidden=out, spans=spans, attention_mask=torch.ones(b, pos, dtype=torch.bool))

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        raise ValueError("The CNN trunk has no language model to decode with; use a continuous head.")

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise ValueError("The CNN trunk has no language-model head; token heads need a VLM backbone.")

    def input_embeddings(self) -> nn.Embedding:
        return self.text

    def vision_modules(self) -> list[nn.Module]:
        return [self.encoders]

    def save_pretrained(self, path: str) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "views": self.views, "hidden_size": self.hidden_size,
                "channels": list(self.channels)}
        (out / META_FILE).write_text(json.dumps(meta, indent=1))
        save_model(self, str(out / "model.safetensors"))

    @classmethod
    def registry_name(cls) -> str:
        return "cnn"

    @classmethod
    def build(cls, options: CNNOptions) -> CNNBackbone:
        """A random-init trunk of the given (else default) size."""
        return cls(
            options.views if options.views is not None else DEFAULT_VIEWS,
            options.hidden_size if options.hidden_size is not None else DEFAULT_HIDDEN,
            options.channels if options.channels is not None else DEFAULT_CHANNELS,
        )

    @classmethod
    def load(cls, folder: Folder, options: CNNOptions) -> CNNBackbone:
        meta = folder.meta
        held = {
            "views": meta["views"],
            "hidden_size": meta["hidden_size"],
            "channels": tuple(meta["channels"]),
        }
        for name, value in held.items():
            check_folder_agrees(folder, name, getattr(options, name), value)
        model = cls(held["views"], held["hidden_size"], held["channels"])
        load_model(model, str(folder.path / "model.safetensors"))
        return model

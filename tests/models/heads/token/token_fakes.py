"""Test helpers for token heads: a tiny GPT-2 behind the Backbone contract (no real VLM needed).

The fake encodes each camera view as 4 pooled colour tokens (so predictions depend on
the images), left-pads the instruction, appends extra blocks causally and exposes a
KV-cache ``step``. Its char-level tokenizer makes digits, ``-``, ``.``, space and
comma single tokens; the model vocabulary has 300 extra ids past the tokenizer's for
reserved action ids (bins, FAST).
"""

from __future__ import annotations

import string

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput
from vlaworks.models.backbones.native import cache_argument

RESERVED = 300


def char_tokenizer() -> PreTrainedTokenizerFast:
    chars = ["<pad>", "<eos>", *string.printable[:95]]
    core = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")
    tok.padding_side = "left"
    return tok


class TinyGPT2Backbone(Backbone):
    """GPT-2 (2 layers, width 32) with pooled image tokens before the instruction."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self._tok = char_tokenizer()
        cfg = GPT2Config(
            vocab_size=len(self._tok) + RESERVED,
            n_positions=1024,
            n_embd=32,
            n_layer=2,
            n_head=2,
            bos_token_id=self._tok.eos_token_id,
            eos_token_id=self._tok.eos_token_id,
        )
        cfg._attn_implementation = "eager"
        self.lm = GPT2LMHeadModel(cfg).eval()
        self.hidden_size = cfg.n_embd
        self.image_proj = nn.Linear(3, cfg.n_embd)

    def _image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        b, v = images.shape[:2]
        pooled = F.adaptive_avg_pool2d(images.flatten(0, 1).float() / 255.0, 2)  # [B*V, 3, 2, 2]
        return self.image_proj(pooled.flatten(2).transpose(1, 2).reshape(b, v * 4, 3))

    def forward(self, images, instructions, extras=(), *, use_cache=False, output_hidden_states=False):
        wte = self.lm.transformer.wte
        text = self._tok(list(instructions), return_tensors="pt", padding=True, add_special_tokens=False)
        img = self._image_tokens(images)
        b, n_img = img.shape[:2]
        # left padding: [pads | image tokens | instruction | extra blocks]
        lengths = text.attention_mask.sum(1)
        width = text.input_ids.shape[1]
        embeds, mask = [], []
        for i in range(b):
            n_pad = width - int(lengths[i])
            ids = text.input_ids[i, n_pad:]
            row = torch.cat([wte(text.input_ids[i, :n_pad]), img[i], wte(ids)])
            embeds.append(row)
            mask.append(torch.cat([torch.zeros(n_pad), torch.ones(n_img + len(ids))]))
        embeds, mask = torch.stack(embeds), torch.stack(mask).long()
        spans, blocks = {"image": slice(0, n_img)}, []
        start = embeds.shape[1]
        for block in extras:
            if block.attention != "causal":
                raise ValueError("The GPT-2 test backbone supports causal blocks only.")
            blocks.append(block.embeds if block.embeds is not None else wte(block.ids))
            spans[block.name] = slice(start, start + block.length)
            start += block.length
        if blocks:
            embeds = torch.cat([embeds, *blocks], dim=1)
            mask = torch.cat([mask, torch.ones(b, start - mask.shape[1], dtype=torch.long)], dim=1)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        cache = DynamicCache() if use_cache else None
        out = self.lm.transformer(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=pos,
            use_cache=use_cache,
            **{self._cache_name: cache},
        )
        past = getattr(out, self._cache_name)
        state = {"past": past, "mask": mask, "pos": pos[:, -1] + 1} if use_cache else None
        return BackboneOutput(hidden=out.last_hidden_state, spans=spans, attention_mask=mask, cache=state)

    @property
    def _cache_name(self) -> str:
        return cache_argument(type(self.lm.transformer))

    def step(self, ids, cache):
        n = ids.shape[1]
        mask = torch.cat([cache["mask"], torch.ones_like(ids)], dim=1)
        pos = cache["pos"][:, None] + torch.arange(n)
        out = self.lm.transformer(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{self._cache_name: cache["past"]},
        )
        past = getattr(out, self._cache_name)
        return out.last_hidden_state, {"past": past, "mask": mask, "pos": pos[:, -1] + 1}

    def lm_logits(self, hidden):
        return self.lm.lm_head(hidden)

    def input_embeddings(self):
        return self.lm.transformer.wte

    def vision_modules(self):
        return [self.image_proj]

    @property
    def tokenizer(self):
        return self._tok

    def save_pretrained(self, path):
        self.lm.save_pretrained(path)


def make_batch(b: int = 3, chunk: int = 4, dim: int = 7, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (b, 1, 3, 16, 16), generator=g, dtype=torch.uint8)
    instructions = ["pick up the red cube", "open drawer", "put the bowl on the plate"][:b]
    instructions += ["push"] * (b - len(instructions))
    t = torch.linspace(0, 1, chunk)[None, :, None]
    actions = 0.8 * torch.sin(
        6.28 * t * torch.rand(b, 1, dim, generator=g) + torch.rand(b, 1, dim, generator=g)
    )
    return Batch(images=images, instructions=instructions, actions=actions)


def smooth_chunks(n: int, chunk: int = 8, dim: int = 7, seed: int = 0) -> np.ndarray:
    """Random sinusoids per dimension: the smooth kind of action chunk FAST compresses well."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, chunk)[None, :, None]
    freq = rng.uniform(0.2, 1.5, (n, 1, dim))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1, dim))
    amp = rng.uniform(0.1, 0.9, (n, 1, dim))
    return amp * np.sin(2 * np.pi * freq * t + phase)

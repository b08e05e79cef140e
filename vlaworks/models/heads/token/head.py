"""The token action head: actions as LM tokens (bins, strings or FAST), decoded greedily
(or, for bins and strings, by the median of each number: ``decoding="median"``; for bins,
by its expected value: ``decoding="mean"``).

Vocabulary mapping (decided here, per tokenizer):

* **string tokens** (seed 004) are ordinary text: each symbol is the id of its character
  (digits, ``-``, ``.``, the two separators) in ``backbone.tokenizer``; every character
  must be a single token there, otherwise construction fails with the offending one.
* **bins and FAST** use a *reserved id range* of the LM vocabulary, by default its last
  ``n_symbols`` ids as OpenVLA does (those rows of the embedding / LM head are
  re-purposed by fine-tuning). Pass ``id_range=(first, stop)`` to use dedicated tokens
  instead (e.g. added to the tokenizer and the embeddings resized by the recipe). A
  range that covers a special token (EOS, PAD, ...) is rejected.

The answer ends with the tokenizer's EOS token for variable-length answers (string,
FAST); bins have a fixed length ``chunk * action_dim`` and no EOS.

Training appends the teacher-forced answer ids as one causal block (``name``) and the
loss is next-token cross-entropy over the whole LM vocabulary on that span only; tokens
of padded timesteps (``batch.action_mask``) are left out where a token belongs to one
timestep (bins, string). With ``input_noise = p`` each teacher-forced *input* token that
spells a value is replaced, with probability ``p``, by a random value symbol (the targets
stay clean): teacher forcing otherwise lets a small LM predict each timestep by copying
the previous one, so at inference one wrong token derails the rest of the chunk
(measured on the demo data: teacher-forced cross-entropy falling over the chunk while the
decoded error triples from its first to its last step; BENCHMARKS.md). Off by default (the
papers train with plain teacher forcing).

Bins are unordered classes to a one-hot cross-entropy, and greedy decoding of an uncertain
bin distribution jumps to its mode: where a small model splits its mass between "left" and
"right" at full speed, greedy picks one extreme (measured: wrong-sign saturated commands in
closed loop). Two bins-only options address this, both off by default (OpenVLA's one-hot
targets and argmax): ``label_sigma`` trains on Gaussian soft targets over the bins
(HL-Gauss), and ``decoding="mean"`` decodes each value to the expectation of the bin
centres under the model's distribution (a continuous value, as a regression head's), feeding
the bin that holds it to the next step.

Inference runs the prompt once and decodes with the backbone's KV cache
(:meth:`Backbone.step`), masking the logits with the tokenizer's grammar. Tokens the
grammar forces (``.``, separators, END) are appended without a decision and fed together
with the next step, so they cost no extra LM call; rows of a batch decode together in
lockstep.

The tokenizer travels inside the model weights: its JSON (for FAST including the BPE
merges learnt by :meth:`TokenActionHead.fit_tokenizer`) is the persistent ``uint8``
buffer ``tokenizer_state``, so ``model.safetensors`` alone rebuilds the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.heads.token.base import ActionTokenizer, Grammar
from vlaworks.models.lm_text import answer_span_loss, pad_answers

STATE_KEY = "tokenizer_state"
#: symbol choice at each decoding step: the papers' greedy argmax, or the median of the
#: model's distribution over each number (bins / string; robust where greedy digit-by-digit
#: decoding takes each digit's mode, which under uncertainty spells 0.0000), or for bins the
#: expected value of each number
DECODINGS = ("greedy", "median", "mean")
#: the options of each action tokenizer (its constructor's; the defaults are its own)
TOKENIZER_OPTIONS = {
    "bins": ("n_bins",),
    "string": ("decimals", "dim_sep", "step_sep"),
    "fast": ("scale", "vocab_size"),
}


@dataclass
class TokenHeadOptions:
    """Options of the ``token`` head. The chosen tokenizer's own options sit beside the
    head's (``n_bins``; ``decimals``, ``dim_sep``, ``step_sep``; ``scale``, ``vocab_size``);
    another tokenizer's option is an error, as is any tokenizer option with ``tokenizer_dir``."""

    tokenizer: Literal["bins", "string", "fast"] = "bins"
    #: ``greedy`` (the papers'), ``median`` (bins / string) or ``mean`` (bins)
    decoding: Literal["greedy", "median", "mean"] = "greedy"
    #: LM ids ``[first, stop)`` for bins / FAST symbols (default: the vocabulary's last ids)
    id_range: tuple[int, int] | None = None
    #: load a saved (e.g. fitted FAST) tokenizer from this folder instead
    tokenizer_dir: str | None = None
    n_bins: int | None = None
    decimals: int | None = None
    dim_sep: str | None = None
    step_sep: str | None = None
    scale: float | None = None
    vocab_size: int | None = None
    #: training only: probability of replacing each teacher-forced input value token by a
    #: random value symbol (targets stay clean); 0 = the papers' plain teacher forcing
    input_noise: float = 0.0
    #: bins only, training: std (in bin widths) of Gaussian soft targets over the bins
    #: (HL-Gauss); 0 = OpenVLA's one-hot targets
    label_sigma: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.input_noise < 1.0:
            raise ValueError(f"Token head input_noise must be in [0, 1); got {self.input_noise}.")
        if self.label_sigma < 0:
            raise ValueError(f"Token head label_sigma must be >= 0 (bin widths); got {self.label_sigma}.")
        for kind, names in TOKENIZER_OPTIONS.items():
            given = [n for n in names if getattr(self, n) is not None]
            if given and kind != self.tokenizer:
                raise ValueError(
                    f"Token head option {given[0]!r} belongs to tokenizer {kind!r}, not {self.tokenizer!r}; "
                    f"{self.tokenizer!r} takes {', '.join(TOKENIZER_OPTIONS[self.tokenizer])}."
                )
        if self.tokenizer_dir is not None and self.tokenizer_options():
            raise ValueError(
                f"Token head options {sorted(self.tokenizer_options())} do not apply with tokenizer_dir "
                "(the saved tokenizer keeps its own); drop them."
            )

    def tokenizer_options(self) -> dict[str, Any]:
        """The given options of the chosen tokenizer, as its constructor takes them."""
        names = TOKENIZER_OPTIONS[self.tokenizer]
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def _blob(tokenizer: ActionTokenizer) -> torch.Tensor:
    return torch.tensor(list(tokenizer.to_json().encode()), dtype=torch.uint8)


class TokenActionHead(ActionHead):
    """Autoregressive action tokens through the backbone's own LM head."""

    def __init__(
        self,
        tokenizer: ActionTokenizer,
        chunk: int,
        action_dim: int = 7,
        *,
        id_range: tuple[int, int] | None = None,
        name: str = "action_tokens",
        decoding: str = "greedy",
        input_noise: float = 0.0,
        label_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        if chunk < 1 or action_dim < 1:
            raise ValueError(
                f"TokenActionHead needs chunk >= 1 and action_dim >= 1; got {chunk}, {action_dim}."
            )
        if label_sigma > 0 and tokenizer.kind != "bins":
            raise ValueError(
                f"label_sigma (soft targets over bins) needs bin tokens, not {tokenizer.kind!r}."
            )
        self.input_noise, self.label_sigma = input_noise, label_sigma
        self.tokenizer, self.chunk, self.action_dim = tokenizer, chunk, action_dim
        self.set_decoding(decoding)
        self.id_range, self.name = id_range, name
        self.register_buffer("symbol_ids", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer(STATE_KEY, _blob(tokenizer))
        # the backbone is referenced, not owned: keep it out of this module's state dict
        object.__setattr__(self, "_backbone", None)
        # the last batch's teacher-forced answers: a training step encodes them once for the
        # appended tokens and reads them again for the loss
        object.__setattr__(self, "_answers", None)

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: TokenHeadOptions
    ) -> TokenActionHead:
        """Registry builder (see :class:`TokenHeadOptions`). A FAST head built without a
        saved tokenizer must be fitted (:meth:`fit_tokenizer`) before use."""
        from vlaworks.models.heads.token import build_action_tokenizer, load_action_tokenizer

        if options.tokenizer_dir is not None:
            tok = load_action_tokenizer(options.tokenizer_dir)
        else:
            tok = build_action_tokenizer(
                options.tokenizer, config.chunk_size, config.action_dim, **options.tokenizer_options()
            )
        head = cls(
            tok,
            config.chunk_size,
            config.action_dim,
            id_range=options.id_range,
            decoding=options.decoding,
            input_noise=options.input_noise,
            label_sigma=options.label_sigma,
        )
        if tok.kind != "fast" or options.tokenizer_dir is not None:
            head.bind(backbone)  # fail early on a vocabulary that cannot hold the symbols
        return head

    def set_decoding(self, decoding: str) -> None:
        """Choose the inference-time decoding (the weights do not depend on it): ``greedy``
        for every tokenizer, ``median`` for bins and strings, ``mean`` for bins."""
        if decoding not in DECODINGS:
            raise ValueError(f"Unknown decoding {decoding!r}; use one of {list(DECODINGS)}.")
        kind = self.tokenizer.kind
        if decoding == "median" and kind == "fast":
            raise ValueError("FAST tokens (DCT + BPE) have no numeric order; use decoding='greedy'.")
        if decoding == "mean" and kind != "bins":
            raise ValueError(f"decoding='mean' needs bin tokens, not {kind!r}; use 'greedy' or 'median'.")
        self.decoding = decoding

    def fit_tokenizer(self, chunks: np.ndarray) -> None:
        """Fit a data-dependent tokenizer (FAST) on normalised chunks ``[N, T, D]``."""
        fit = getattr(self.tokenizer, "fit", None)
        if fit is None:
            raise TypeError(f"The {self.tokenizer.kind!r} action tokenizer has nothing to fit.")
        fit(np.asarray(chunks))
        self._set_tokenizer(self.tokenizer)

    def _set_tokenizer(self, tokenizer: ActionTokenizer) -> None:
        self.tokenizer = tokenizer
        setattr(self, STATE_KEY, _blob(tokenizer).to(getattr(self, STATE_KEY).device))
        self.symbol_ids = self.symbol_ids[:0]
        object.__setattr__(self, "_backbone", None)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        """Rebuild the tokenizer from the saved ``tokenizer_state`` before the buffers load."""
        from vlaworks.models.heads.token import tokenizer_from_json

        saved = state_dict.get(prefix + STATE_KEY)
        if saved is not None:
            self._set_tokenizer(tokenizer_from_json(bytes(saved.cpu().tolist()).decode()))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    # --- vocabulary -------------------------------------------------------------------------
    def bind(self, backbone: Backbone) -> None:
        """Resolve the LM ids of the action symbols (and END) for ``backbone``."""
        if self._backbone is backbone and self.symbol_ids.numel():
            return
        if self.chunk < 1 or self.action_dim < 1:
            raise ValueError(
                f"TokenActionHead needs chunk, action_dim >= 1; got {self.chunk}, {self.action_dim}."
            )
        text_tok = backbone.tokenizer
        eos = getattr(text_tok, "eos_token_id", None)
        if eos is None:
            raise ValueError("TokenActionHead needs backbone.tokenizer.eos_token_id to end action answers.")
        chars = self.tokenizer.symbol_chars
        ids = self._char_ids(text_tok, chars) if chars is not None else self._reserved_ids(backbone, text_tok)
        device = backbone.input_embeddings().weight.device
        self.symbol_ids = torch.tensor([*ids, int(eos)], dtype=torch.long, device=device)
        object.__setattr__(self, "_backbone", backbone)

    @staticmethod
    def _char_ids(text_tok, chars: tuple[str, ...]) -> list[int]:
        ids = []
        for ch in chars:
            found = text_tok.encode(ch, add_special_tokens=False)
            if len(found) != 1:
                raise ValueError(
                    f"String action tokens need {ch!r} to be one token of the backbone tokenizer; it "
                    f"encodes to {found}. Choose other separators or a tokenizer with single-char digits."
                )
            ids.append(int(found[0]))
        if len(set(ids)) != len(ids):
            raise ValueError(f"Action characters {chars} map to repeated token ids {ids}.")
        return ids

    def _reserved_ids(self, backbone: Backbone, text_tok) -> list[int]:
        vocab = backbone.input_embeddings().num_embeddings
        n = self.tokenizer.n_symbols
        first, stop = self.id_range if self.id_range is not None else (vocab - n, vocab)
        if stop - first != n or first < 0 or stop > vocab:
            fits = min(1024, vocab // 2)
            smaller = (
                f" or a FAST vocabulary that fits (--set policy.head.options.vocab_size={fits})"
                if self.tokenizer.kind == "fast" else ""
            )
            raise ValueError(
                f"Reserved action ids [{first}, {stop}) must hold exactly {n} ids inside the LM vocabulary "
                f"of {vocab}; pass id_range=(first, first + {n}){smaller}, or resize the embeddings first."
            )
        special = set(getattr(text_tok, "all_special_ids", []) or [])
        clash = sorted(special.intersection(range(first, stop)))
        if clash:
            raise ValueError(
                f"Reserved action ids [{first}, {stop}) cover special tokens {clash}; pass an id_range "
                "that avoids them (e.g. dedicated tokens added to the tokenizer)."
            )
        return list(range(first, stop))

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            raise RuntimeError(
                "TokenActionHead is not bound; call extra_tokens(...) or bind(backbone) first."
            )
        return self._backbone

    # --- training ---------------------------------------------------------------------------
    def answer_ids(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced LM ids ``[B, L]`` (right-padded) and the loss mask ``[B, L]``."""
        sym, keep = self.answer_symbols(batch)
        return self.symbol_ids[sym], keep

    def answer_symbols(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced symbols ``[B, L]`` (right-padded with END) and the loss mask ``[B, L]``,
        encoded once per batch (the step's :meth:`extra_tokens` and :meth:`loss` share them)."""
        cached = self._answers
        if cached is not None and cached[0] is batch:
            return cached[1], cached[2]
        sym, keep = self._encode_answers(batch)
        object.__setattr__(self, "_answers", (batch, sym, keep))
        return sym, keep

    def _encode_answers(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.target_actions(batch).detach().float().cpu().numpy()
        step_ok = batch.action_mask.cpu().numpy()
        end = self.tokenizer.n_symbols
        rows, masks = [], []
        for chunk, ok in zip(actions, step_ok, strict=True):
            symbols = self.tokenizer.encode(chunk)
            steps = self.tokenizer.steps_of(symbols, self.action_dim)
            mask = [True] * len(symbols) if steps is None else [bool(ok[s]) for s in steps]
            if self.tokenizer.uses_end:
                symbols, mask = [*symbols, end], [*mask, True]
            rows.append(symbols)
            masks.append(mask)
        sym, keep = pad_answers(rows, end, masks)
        device = self.symbol_ids.device
        return sym.to(device), keep.to(device)

    def noisy(self, symbols: torch.Tensor) -> torch.Tensor:
        """``symbols`` with each value symbol replaced, with probability ``input_noise``, by a
        random value symbol (torch's global RNG, so a seeded run repeats)."""
        values = torch.tensor(self.tokenizer.value_symbols, dtype=symbols.dtype, device=symbols.device)
        draw = torch.rand(symbols.shape, device=symbols.device)
        hit = torch.isin(symbols, values) & (draw < self.input_noise)
        swap = values[torch.randint(len(values), symbols.shape, device=symbols.device)]
        return torch.where(hit, swap, symbols)

    def extra_tokens(self, batch: Batch, backbone: Backbone, *, training: bool) -> list[ExtraTokens]:
        self.bind(backbone)
        if not training:
            return []
        sym, _ = self.answer_symbols(batch)
        if self.input_noise > 0 and self.training:
            sym = self.noisy(sym)
        return [ExtraTokens(self.name, ids=self.symbol_ids[sym], attention="causal")]

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        ids, keep = self.answer_ids(batch)
        soft = None
        if self.label_sigma > 0:  # bins have no END: the span is chunk * action_dim values
            values = self.target_actions(batch).flatten(1)
            target = self.tokenizer.soft_targets(values, self.label_sigma)
            soft = (self.symbol_ids[: self.tokenizer.n_symbols], target)
        loss, acc = answer_span_loss(self.backbone, out, self.name, ids, keep, soft)
        return loss, {"token_ce": float(loss.detach()), "token_acc": float(acc)}

    # --- inference --------------------------------------------------------------------------
    def _push(self, grammar: Grammar, symbols: list[int], pending: list[int], symbol: int) -> None:
        """Record a chosen symbol plus every symbol the grammar then forces."""
        while True:
            grammar.push(symbol)
            symbols.append(symbol)
            pending.append(symbol)
            if grammar.done:
                pending.clear()  # nothing follows: the final tokens need not be fed
                return
            allowed = grammar.allowed()
            if allowed.sum() != 1:
                return
            symbol = int(np.flatnonzero(allowed)[0])

    @torch.no_grad()
    def predict(
        self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens], *, use_cache: bool = True
    ) -> torch.Tensor:
        """Greedy constrained decoding -> normalised chunk ``[B, chunk, action_dim]``.

        ``use_cache=False`` re-runs the full sequence at every step (slow; the reference
        the cached path is tested against)."""
        symbols, values = self._decode(batch, backbone, prefix, use_cache=use_cache)
        if self.decoding == "mean":
            chunks = [np.asarray(v, dtype=np.float32).reshape(self.chunk, self.action_dim) for v in values]
        else:
            chunks = [self.tokenizer.decode(s, self.chunk, self.action_dim) for s in symbols]
        return torch.from_numpy(np.stack(chunks)).to(batch.images.device)

    @torch.no_grad()
    def decode_symbols(
        self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens], *, use_cache: bool = True
    ) -> list[list[int]]:
        """Per row, the decoded action symbols (END removed)."""
        return self._decode(batch, backbone, prefix, use_cache=use_cache)[0]

    def _decode(
        self, batch: Batch, backbone: Backbone, prefix: list[ExtraTokens], *, use_cache: bool
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Per row, the decoded symbols (END removed) and, for ``decoding="mean"``, the
        expected value of each (empty lists otherwise)."""
        self.bind(backbone)
        rows, end = batch.size, self.tokenizer.n_symbols
        grammars = [self.tokenizer.grammar(self.chunk, self.action_dim) for _ in range(rows)]
        symbols: list[list[int]] = [[] for _ in range(rows)]
        values: list[list[float]] = [[] for _ in range(rows)]
        pending: list[list[int]] = [[] for _ in range(rows)]
        out = backbone(batch.images, batch.instructions, list(prefix), use_cache=use_cache)
        cache, last, fed = out.cache, out.hidden[:, -1], []
        pad = torch.full((rows, 1), end, dtype=torch.long)
        while True:
            need = [r for r in range(rows) if not grammars[r].done and not pending[r]]
            if need:
                logits = backbone.lm_logits(last[need])[:, self.symbol_ids].float()
                allowed = torch.from_numpy(np.stack([grammars[r].allowed() for r in need]))
                masked = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
                if self.decoding == "median":
                    probs = masked.softmax(-1).cpu().numpy()
                    choice = [grammars[r].median_symbol(p) for r, p in zip(need, probs, strict=True)]
                elif self.decoding == "mean":
                    mean = self.tokenizer.expectation(masked.softmax(-1).cpu().numpy()[:, :end])
                    for r, v in zip(need, mean.tolist(), strict=True):
                        values[r].append(v)
                    choice = self.tokenizer.encode(mean[:, None])  # the bin holding each mean
                else:
                    choice = masked.argmax(-1).tolist()
                for r, symbol in zip(need, choice, strict=True):
                    self._push(grammars[r], symbols[r], pending[r], symbol)
            active = [r for r in range(rows) if pending[r]]
            if not active:
                break
            n = min(len(pending[r]) for r in active)
            step = pad.expand(rows, n).clone()
            for r in active:
                step[r] = torch.tensor(pending[r][:n])
                del pending[r][:n]
            ids = self.symbol_ids[step.to(self.symbol_ids.device)]
            if use_cache:
                hidden, cache = backbone.step(ids, cache)
            else:
                fed.append(ids)
                block = ExtraTokens(self.name, ids=torch.cat(fed, dim=1))
                hidden = backbone(batch.images, batch.instructions, [*prefix, block]).hidden
            last = hidden[:, -1]
        return [[s for s in row if s != end] for row in symbols], values


#: the registry entry (``HEADS["token"]``)
PART = Part(TokenHeadOptions, TokenActionHead.from_config)

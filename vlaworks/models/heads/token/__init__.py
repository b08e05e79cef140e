"""Token action heads: actions as LM tokens, decoded autoregressively.

Three tokenizers share one head: OpenVLA's 256 bins (:class:`BinTokenizer`), seed 004's
character strings (:class:`StringTokenizer`) and seed 003's FAST DCT + BPE tokens
(:class:`FastTokenizer`). :class:`TokenActionHead` teacher-forces the answer tokens for
training and decodes them greedily with the backbone's KV cache at inference.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlaworks.models.heads.token.base import CONFIG_FILE, ActionTokenizer, Grammar
from vlaworks.models.heads.token.bins import BinTokenizer
from vlaworks.models.heads.token.fast import FastTokenizer
from vlaworks.models.heads.token.strings import NumberGrammar, StringTokenizer

__all__ = [
    "ActionTokenizer",
    "BinTokenizer",
    "FastTokenizer",
    "Grammar",
    "NumberGrammar",
    "StringTokenizer",
    "load_action_tokenizer",
]


def load_action_tokenizer(directory: str | Path) -> ActionTokenizer:
    """Re-create any action tokenizer written by ``ActionTokenizer.save(directory)``."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"No {CONFIG_FILE} in {directory}; save the tokenizer there first.")
    cfg = json.loads(path.read_text())
    kind = cfg.pop("kind")
    if kind == "bins":
        return BinTokenizer(**cfg)
    if kind == "string":
        return StringTokenizer(**cfg)
    if kind == "fast":
        return FastTokenizer.load(directory)
    raise ValueError(f"Unknown action tokenizer kind {kind!r} in {path}; expected bins, string or fast.")

"""Token action heads: actions as LM tokens, decoded autoregressively.

Three tokenizers share one head: OpenVLA's 256 bins (:class:`BinTokenizer`), seed 004's
character strings (:class:`StringTokenizer`) and seed 003's FAST DCT + BPE tokens
(:class:`FastTokenizer`). :class:`TokenActionHead` teacher-forces the answer tokens for
training and decodes them greedily with the backbone's KV cache at inference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlaworks.models.config import Registry
from vlaworks.models.heads.token.base import CONFIG_FILE, ActionTokenizer, Grammar
from vlaworks.models.heads.token.bins import BinTokenizer
from vlaworks.models.heads.token.fast import FastTokenizer
from vlaworks.models.heads.token.head import TokenActionHead
from vlaworks.models.heads.token.strings import NumberGrammar, StringTokenizer

__all__ = [
    "ACTION_TOKENIZERS",
    "ActionTokenizer",
    "BinTokenizer",
    "FastTokenizer",
    "Grammar",
    "NumberGrammar",
    "StringTokenizer",
    "TokenActionHead",
    "build_action_tokenizer",
    "load_action_tokenizer",
    "tokenizer_from_json",
]


#: action tokenizer kind -> its class (``create`` a new one, ``from_dict`` a saved one)
ACTION_TOKENIZERS = Registry(
    "action tokenizer", {"bins": BinTokenizer, "string": StringTokenizer, "fast": FastTokenizer}
)


def build_action_tokenizer(kind: str, chunk: int, action_dim: int = 7, **options: Any) -> ActionTokenizer:
    """A new tokenizer by name; FAST also needs the chunk shape and must be fitted before use."""
    return ACTION_TOKENIZERS.resolve(kind).create(chunk, action_dim, **options)


def tokenizer_from_json(text: str) -> ActionTokenizer:
    """Rebuild any action tokenizer from its ``to_json()`` document."""
    data = json.loads(text)
    return ACTION_TOKENIZERS.resolve(str(data.pop("kind", None))).from_dict(data)


def load_action_tokenizer(directory: str | Path) -> ActionTokenizer:
    """Re-create any action tokenizer written by ``ActionTokenizer.save(directory)``."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"No {CONFIG_FILE} in {directory}; save the tokenizer there first.")
    return tokenizer_from_json(path.read_text())

"""Stage 2a: the target-object phrase of an instruction ("put the eggplant in the yellow
basket" -> "eggplant").

A phrase extractor is any callable ``str -> str``. Two are built in:

* :func:`rule_phrase` (default): a small grammar. It keeps the first sub-instruction
  (the first object grasped), takes the noun phrase after the first determiner (or after
  the leading verb when there is none), cuts it at the first preposition or relative
  word, and drops position words ("leftmost red cube" -> "red cube"): the region proposal
  already says *which* object, and open-vocabulary detectors ground nouns, not relations.
* :class:`LMPhrase`: a causal language model (the seed uses Llama 2-7B) scoring every
  candidate word span of that first sub-instruction by its likelihood after a prompt and
  returning the best; the answer is always a span of the instruction, never free text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

PhraseExtractor = Callable[[str], str]

_CLAUSE_SPLIT = re.compile(r"\s*(?:,?\s+and then\s+|,\s*then\s+|;\s*|\.\s+|\bafter that\b,?\s*)")
_DETERMINER = re.compile(r"\b(?:the|a|an)\s+")
_DETERMINERS = {"the", "a", "an"}
_VERBS = ("pick up", "put", "place", "stack", "lift", "push", "slide", "move", "grab", "take", "get")
#: words that end the object's noun phrase ("red cube | in the bowl", "red cube | closest to ...")
_BOUNDARY = {
    "in", "into", "inside", "on", "onto", "atop", "to", "toward", "towards", "at", "from", "and",
    "so", "with", "near", "next", "beside", "between", "closest", "nearest", "furthest", "farthest",
    "left", "right", "behind", "above", "below", "under", "over", "off", "up", "down", "that",
    "which", "of", "then",
}  # fmt: skip
#: position words dropped from the front of the phrase
_POSITION = {"leftmost", "rightmost", "frontmost", "backmost", "topmost", "middle", "front", "back"}


def first_clause(instruction: str) -> str:
    """The first sub-instruction, lower-cased, without trailing punctuation."""
    text = instruction.strip().lower()
    return _CLAUSE_SPLIT.split(text, maxsplit=1)[0].strip(" .,;:!?")


def rule_phrase(instruction: str) -> str:
    """The target-object phrase of ``instruction`` by the grammar in the module docstring."""
    clause = first_clause(instruction)
    match = _DETERMINER.search(clause)
    if match:
        rest = clause[match.end() :]
    else:
        verb = next((v for v in _VERBS if clause.startswith(v + " ")), "")
        rest = clause[len(verb) :]
    words = re.findall(r"[a-z0-9][a-z0-9'-]*", rest)
    cut = next((i for i, w in enumerate(words) if w in _BOUNDARY and i > 0), len(words))
    words = words[:cut]
    while words and (words[0] in _DETERMINERS or (len(words) > 1 and words[0] in _POSITION)):
        words = words[1:]
    if not words:
        raise ValueError(
            f"Found no object phrase in the instruction {instruction!r}; use --phrase lm:PATH or give "
            "instructions that name the object (e.g. 'put the red cube in the bowl')."
        )
    return " ".join(words)


def candidate_spans(instruction: str, max_words: int = 4) -> list[str]:
    """Every span of 1..``max_words`` words of the first sub-instruction, in reading order."""
    words = re.findall(r"[a-z0-9][a-z0-9'-]*", first_clause(instruction))
    spans = []
    for start in range(len(words)):
        for end in range(start + 1, min(start + max_words, len(words)) + 1):
            spans.append(" ".join(words[start:end]))
    return spans


PROMPT = "Instruction: {instruction}\nThe object the robot must pick up or move first, in a few words:"


class LMPhrase:
    """Phrase extraction with a Hugging Face causal LM loaded from ``path``.

    Each candidate span ``s`` of the instruction (see :func:`candidate_spans`) is scored
    by the mean log-probability of the tokens of ``" " + s`` after :data:`PROMPT`; the
    best-scoring span is the phrase.
    """

    def __init__(self, path: Path | str, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"No language model at {path} (config.json is missing); pass a folder saved with "
                "save_pretrained, e.g. --phrase lm:/models/llama-2-7b-hf."
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
        self.device = device

    def __call__(self, instruction: str) -> str:
        import torch

        spans = candidate_spans(instruction)
        if not spans:
            raise ValueError(f"The instruction {instruction!r} has no words to choose a phrase from.")
        prompt = self.tokenizer(PROMPT.format(instruction=instruction), add_special_tokens=True)["input_ids"]
        scores = []
        with torch.no_grad():
            for span in spans:
                answer = self.tokenizer(" " + span, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([prompt + answer], device=self.device)
                logprobs = self.model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                targets = ids[0, 1:]
                picked = logprobs.gather(-1, targets[:, None])[:, 0][len(prompt) - 1 :]
                scores.append(float(picked.mean()))
        return spans[max(range(len(spans)), key=scores.__getitem__)]


def phrase_extractor(spec: str) -> PhraseExtractor:
    """``"rules"`` or ``"lm:PATH"`` -> a phrase extractor."""
    if spec == "rules":
        return rule_phrase
    if spec.startswith("lm:") and len(spec) > 3:
        return LMPhrase(spec[3:])
    raise ValueError(f"Unknown phrase extractor {spec!r}; use 'rules' or 'lm:PATH' (a causal LM folder).")
